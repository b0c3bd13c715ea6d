"""The one scoring path: documents → passages → (n, 7) scores → output rows.

``predict``, ``label`` (local and Ray engines), ``report`` and ``data suggest`` all score
through :func:`score_texts`, and documents through :func:`process_document` and
:func:`documents_rows`. Where a passage's scores are bit-identical whatever shares its batch (BERT
in bfloat16, fixed batch shapes) the passages of many documents are scored together; otherwise each
document is scored on its own (float32 scores move below 1e-5 with the batch, int8 more). Either way
the same passage gets the same scores whichever command scored it.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.errors import DocumentError
from policyclf.labels import CATEGORIES
from policyclf.segment import DEFAULT_MAX_BYTES, DEFAULT_MAX_PASSAGES, library_messages, segment_document


@dataclass
class Item:
    """One passage to score."""

    passage_id: str
    text: str
    seq: int
    doc: str | None = None
    heading: str = ""


def score_texts(model: Any, texts: Sequence[str], batch_size: int = 64, progress: bool = False,
                desc: str = "scoring", headings: Sequence[str] | None = None) -> np.ndarray:
    """(n, 7) scores of ``texts``: length-sorted batches of ``batch_size``, scattered back in order.

    ``headings`` (one per text) reach models that read them (``use_heading``).
    """
    from tqdm import tqdm

    texts = list(texts)
    heads = list(headings) if headings is not None else [""] * len(texts)
    out = np.zeros((len(texts), len(CATEGORIES)))
    order = np.argsort([len(t) for t in texts], kind="stable")
    bar = tqdm(total=len(texts), unit="passage", desc=desc, disable=not progress, file=sys.stderr)
    for start in range(0, len(order), batch_size):
        idx = order[start:start + batch_size]
        out[idx] = model.predict_proba([texts[i] for i in idx], [heads[i] for i in idx])
        bar.update(len(idx))
    bar.close()
    return out


def make_rows(items: Sequence[Item], scores: np.ndarray, thresholds: np.ndarray) -> list[dict[str, Any]]:
    """Output rows of the passage contract (``passage_id``, ``doc``, ``seq``, ``labels``, ``scores``)."""
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


def file_sha1(path: Path) -> str:
    """Content hash of a document (what decides whether it is labelled again)."""
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha1").hexdigest()


@dataclass
class DocResult:
    """One document read and cut into passages (or the reason it could not be)."""

    rel: str
    sha1: str
    texts: list[str] = field(default_factory=list)
    seqs: list[int] = field(default_factory=list)
    error: str | None = None
    headings: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what reader libraries said about the file

    def items(self) -> list[Item]:
        heads = self.headings or [""] * len(self.texts)
        return [Item(f"{self.rel}:{s:03d}", t, s, self.rel, h) for t, s, h in zip(self.texts, self.seqs, heads)]


def process_document(args: tuple[str, str, int] | tuple[str, str, int, int]) -> DocResult:
    """Read, hash and segment one document ``(root, relative path, max bytes[, max passages])``; never raises.

    Runs in worker processes (local engine) and Ray tasks alike.
    """
    root, rel, max_bytes, *rest = args
    max_passages = rest[0] if rest else DEFAULT_MAX_PASSAGES
    path = Path(root) / rel
    try:
        sha = file_sha1(path)
    except OSError as exc:
        return DocResult(rel, "", error=f"{rel}: cannot read ({exc.strerror})")
    with library_messages() as notes:  # kept with the document's result, not printed between progress bars
        try:
            segs = segment_document(path, max_bytes=max_bytes, max_passages=max_passages)
            res = DocResult(rel, sha, [s.text for s in segs], [s.seq for s in segs], headings=[s.heading for s in segs])
        except DocumentError as exc:
            res = DocResult(rel, sha, error=str(exc).replace(str(path), rel))
        except Exception as exc:  # a reader library failing in an unexpected way must not stop the run
            res = DocResult(rel, sha, error=f"{rel}: could not be read ({type(exc).__name__}: {exc})")
    res.warnings = [n.replace(str(path), rel) for n in notes]
    return res


def scores_exact_across_batches(model: Any) -> bool:
    """True where a passage's scores are bit-identical whatever else shares its batch: the BERT
    backend in bfloat16, whose forward batches have fixed shapes (``BertClassifier.predict_proba``).
    float32 scores move in the sixth decimal with the batch (below 1e-5), and int8 scores depend on
    the batch-mates, so those score one document at a time."""
    inner = getattr(model, "student_", model)  # a distilled model computes with its student
    return getattr(inner, "precision_", None) == "bfloat16"


def documents_rows(model: Any, docs: Sequence[DocResult], batch_size: int = 64,
                   progress: bool = False) -> list[list[dict[str, Any]]]:
    """Scored rows of each document's passages, in order (none for a document that could not be read).

    Where scores are bit-identical across batches (:func:`scores_exact_across_batches`) the passages
    of all ``docs`` are scored in one pass (full batches: with fixed-shape bf16 batches, scoring a
    short document alone spends most of a batch on padding); otherwise batches never mix documents.
    Either way a document's rows do not depend on which other documents were in the run, on resuming,
    or on the engine (byte-identical outputs).
    """
    from tqdm import tqdm

    readable = [d for d in docs if not d.error]
    exact = scores_exact_across_batches(model)
    groups = [readable] if exact else [[d] for d in readable]
    scored: dict[int, list[dict[str, Any]]] = {}
    with tqdm(total=sum(len(d.texts) for d in readable), unit="passage", desc="scoring", file=sys.stderr,
              disable=exact or not progress) as bar:  # one group: score_texts shows its own bar
        for group in groups:
            items = [it for d in group for it in d.items()]
            scores = score_texts(model, [it.text for it in items], batch_size=batch_size, progress=exact and progress,
                                 headings=[it.heading for it in items])
            start = 0
            for d in group:
                n = len(d.texts)
                scored[id(d)] = make_rows(items[start:start + n], scores[start:start + n], model.thresholds_)
                start += n
            bar.update(len(items))
    return [scored.get(id(d), []) for d in docs]


def load_document(path: Path, root: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> DocResult:
    """:func:`process_document` for one path under ``root``, raising on an unreadable file.

    Raises:
        DocumentError: the file could not be read or segmented.
    """
    rel = path.relative_to(root).as_posix() if path != root else path.name
    res = process_document((str(root), rel, max_bytes))
    if res.error:
        raise DocumentError(res.error)
    return res
