"""Scoring passages: from a passage .jsonl or from document files, to .jsonl/.csv rows.

Row contract (stable; external evaluation scripts read it):
``{"passage_id", "doc" (document input only), "seq", "labels": [...], "scores": {category: p}}``.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.corpus import REPO_ROOT, read_jsonl
from policyclf.errors import DataError, DocumentError, PolicyclfError
from policyclf.labels import CATEGORIES
from policyclf.models.base import BaseClassifier, load_model
from policyclf.segment import SUPPORTED_SUFFIXES, find_documents, segment_document

MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODELS = ("policyclf-bert", "policyclf-tfidf")


@dataclass
class Item:
    """One passage to score."""

    passage_id: str
    text: str
    seq: int
    doc: str | None = None


def default_model_dir() -> Path:
    """The shipped default model: the BERT model, else the baseline."""
    for name in DEFAULT_MODELS:
        if (MODELS_DIR / name / "meta.json").is_file():
            return MODELS_DIR / name
    raise PolicyclfError(f"no default model under {MODELS_DIR}; pass --model DIR")


def read_passage_jsonl(path: str | Path) -> list[Item]:
    """Passages from a ``.jsonl`` with ``passage_id`` (or ``id``) and ``text`` per line.

    Raises:
        DataError: naming the line, for invalid JSON, missing fields or an empty file.
    """
    path = Path(path)
    items: list[Item] = []
    for lineno, rec in read_jsonl(path):
        pid = rec.get("passage_id", rec.get("id"))
        text = rec.get("text")
        if pid is None or not isinstance(text, str):
            raise DataError(f"{path} line {lineno}: expected an object with 'passage_id' (or 'id') and 'text'")
        items.append(Item(str(pid), text, int(rec.get("seq", len(items) + 1))))
    if not items:
        raise DataError(f"{path}: no passages (empty file)")
    return items


def document_items(path: Path, root: Path) -> list[Item]:
    """Passages of one document file, ids ``<relative path>:<seq>``."""
    rel = path.relative_to(root).as_posix() if path != root else path.name
    return [Item(f"{rel}:{s.seq:03d}", s.text, s.seq, rel) for s in segment_document(path)]


def score_items(model: BaseClassifier, items: Sequence[Item], batch_size: int = 64,
                progress: bool = True) -> np.ndarray:
    """(n, 7) scores, in batches, with a progress bar."""
    from tqdm import tqdm

    out = np.zeros((len(items), len(CATEGORIES)))
    bar = tqdm(total=len(items), unit="passage", desc="scoring", disable=not progress, file=sys.stderr)
    for start in range(0, len(items), batch_size):
        chunk = items[start:start + batch_size]
        out[start:start + len(chunk)] = model.predict_proba([it.text for it in chunk])
        bar.update(len(chunk))
    bar.close()
    return out


def make_rows(items: Sequence[Item], scores: np.ndarray, thresholds: np.ndarray) -> list[dict[str, Any]]:
    """Output rows of the passage contract."""
    rows = []
    for it, row in zip(items, scores):
        rec: dict[str, Any] = {"passage_id": it.passage_id}
        if it.doc is not None:
            rec["doc"] = it.doc
        rec["seq"] = it.seq
        rec["labels"] = [c for c, s, t in zip(CATEGORIES, row, thresholds) if s >= t]
        rec["scores"] = {c: round(float(s), 6) for c, s in zip(CATEGORIES, row)}
        rows.append(rec)
    return rows


CSV_COLUMNS = ["passage_id", "doc", "seq", "labels", *[f"score_{c}" for c in CATEGORIES]]


def csv_record(row: dict[str, Any]) -> dict[str, Any]:
    """A contract row flattened into spreadsheet columns (labels joined by ';')."""
    return {"passage_id": row["passage_id"], "doc": row.get("doc", ""), "seq": row["seq"],
            "labels": ";".join(row["labels"]), **{f"score_{c}": row["scores"][c] for c in CATEGORIES}}


def write_rows(rows: Iterable[dict[str, Any]], output: str | Path) -> None:
    """Write rows to ``.jsonl`` or ``.csv`` atomically (temporary file, then rename)."""
    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".jsonl", ".csv"):
        raise PolicyclfError(f"{output}: output must end in .jsonl or .csv")
    output.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{output.name}.", dir=output.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8-sig" if suffix == ".csv" else "utf-8", newline="") as f:
            if suffix == ".jsonl":
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
                writer.writeheader()
                for row in rows:
                    writer.writerow(csv_record(row))
        os.replace(tmp, output)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@dataclass
class PredictResult:
    output: Path
    passages: int
    documents: int
    errors: list[tuple[str, str]]


def predict(input_path: str | Path, output: str | Path, model_dir: str | Path | None = None, *,
            force: bool = False, batch_size: int = 64, progress: bool = True) -> PredictResult:
    """Label a passage ``.jsonl``, a document file, or a folder of documents.

    Unreadable documents are skipped and returned in ``errors``; the others are labelled.

    Raises:
        PolicyclfError: missing/empty input, an output that exists without ``force``, a bad
            model directory, or (for a single document) an unreadable file.
    """
    input_path, output = Path(input_path), Path(output)
    if not input_path.exists():
        raise PolicyclfError(f"{input_path}: no such file or folder")
    if output.exists() and not force:
        raise PolicyclfError(f"{output} already exists; pass --force to overwrite it")
    model = load_model(model_dir or default_model_dir())
    errors: list[tuple[str, str]] = []
    documents = 0
    if input_path.is_file() and input_path.suffix.lower() == ".jsonl":
        items = read_passage_jsonl(input_path)
    elif input_path.is_file():
        items = document_items(input_path, input_path.parent)
        documents = 1
    else:
        paths = find_documents(input_path)
        if not paths:
            raise PolicyclfError(f"{input_path}: no documents ({', '.join(SUPPORTED_SUFFIXES)}) in this folder")
        items = []
        for path in paths:
            try:
                items.extend(document_items(path, input_path))
                documents += 1
            except DocumentError as exc:
                errors.append((str(path), str(exc)))
        if not items:
            raise PolicyclfError(f"{input_path}: none of {len(paths)} documents could be read "
                                 f"(first error: {errors[0][1]})")
    scores = score_items(model, items, batch_size=batch_size, progress=progress)
    write_rows(make_rows(items, scores, model.thresholds_), output)
    return PredictResult(output, len(items), documents, errors)
