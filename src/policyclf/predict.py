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
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


from policyclf.corpus import project_root, read_jsonl
from policyclf.errors import DataError, DocumentError, PolicyclfError
from policyclf.labels import CATEGORIES
from policyclf.models.base import load_model
from policyclf.scoring import Item, documents_rows, load_document, make_rows, score_texts
from policyclf.segment import SUPPORTED_SUFFIXES, find_documents

DEFAULT_MODELS = ("policyclf-student-tfidf", "policyclf-tfidf", "policyclf-distilled", "policyclf-bert")


def default_model_dir() -> Path:
    """The shipped default model under the project's ``models/``: the first of :data:`DEFAULT_MODELS`
    that is there.

    The default must meet the issue-11 speed target (≥ 50 passages/s on 2 AVX2 cores), which rules out
    the 12-layer BERT and the BERT + TF-IDF ensemble (``--model models/policyclf-ensemble``, the most
    accurate). Since 2026-12-07 it is the v3 3-layer student combined with the v3 TF-IDF model by the
    ensemble rule: within 0.01 macro-F1 of the 12-layer teacher on both held-out tests (it is above it),
    and above TF-IDF alone in leave-one-region-out (README, "Models"). It meets the speed target on large
    jobs (67.6–81.4 passages/s on 3,159 passages) but not on 500 passages (42.8–45.6), where its start-up
    weighs in; ``--model models/policyclf-tfidf`` is the fast choice there (README, "Speed").
    """
    models = project_root() / "models"
    for name in DEFAULT_MODELS:
        if (models / name / "meta.json").is_file():
            return models / name
    raise PolicyclfError(f"no default model under {models}; pass --model DIR")


def read_passage_jsonl(path: str | Path) -> list[Item]:
    """Passages from a ``.jsonl`` with ``passage_id`` (or ``id``), ``text`` and optionally ``heading`` per line.

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
        items.append(Item(str(pid), text, int(rec.get("seq", len(items) + 1)), heading=str(rec.get("heading") or "")))
    if not items:
        raise DataError(f"{path}: no passages (empty file)")
    return items


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
    runtime: dict[str, Any] | None = None


def predict(input_path: str | Path, output: str | Path, model_dir: str | Path | None = None, *,
            force: bool = False, batch_size: int = 256, progress: bool = True, device: str | None = None,
            precision: str | None = None) -> PredictResult:
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
    model = load_model(model_dir or default_model_dir(), device=device, inference_dtype=precision)
    runtime = model.runtime_info()
    print(f"model {model_dir or default_model_dir()}: {runtime['device']}, {runtime['precision']}"
          + (f" ({runtime['precision_reason']})" if "precision_reason" in runtime else "")
          + (f", {runtime['runtime']} runtime" if "runtime" in runtime else "")
          + (f", tokenizer: {runtime['tokenizer']}" if "tokenizer" in runtime else ""), file=sys.stderr)
    errors: list[tuple[str, str]] = []
    if input_path.is_file() and input_path.suffix.lower() == ".jsonl":
        items = read_passage_jsonl(input_path)
        scores = score_texts(model, [it.text for it in items], batch_size=batch_size, progress=progress,
                             headings=[it.heading for it in items])
        write_rows(make_rows(items, scores, model.thresholds_), output)
        return PredictResult(output, len(items), 0, errors, runtime)
    if input_path.is_file():
        root, paths = input_path.parent, [input_path]
    else:
        root, paths = input_path, find_documents(input_path)
        if not paths:
            raise PolicyclfError(f"{input_path}: no documents ({', '.join(SUPPORTED_SUFFIXES)}) in this folder")
    docs = []
    for path in paths:
        try:
            docs.append(load_document(path, root))
        except DocumentError as exc:
            if input_path.is_file():
                raise
            errors.append((str(path), str(exc)))
    if not docs:
        raise PolicyclfError(f"{input_path}: none of {len(paths)} documents could be read "
                             f"(first error: {errors[0][1]})")
    rows = [row for doc_rows in documents_rows(model, docs, batch_size, progress=progress) for row in doc_rows]
    write_rows(rows, output)
    return PredictResult(output, len(rows), len(docs), errors, runtime)
