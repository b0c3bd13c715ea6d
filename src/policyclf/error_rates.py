"""A model's held-out error rates per category, stored with the model as ``error_rates.json``.

``analyze`` corrects classify-and-count shares with these rates (``analysis.py``). They come from
held-out predictions (the leave-one-region-out folds that ``policyclf report`` saves under
``reports/NAME/predictions/BACKEND/loro-*.jsonl``) joined with the gold labels. The file keeps, per
held-out document, the sufficient statistics of every category (gold positives, true and false
positives, sums of scores over gold positives and negatives, and the document-level any-passage
outcome), so the rates can be resampled by document and restricted to a subset (a document type, or
every region but one) without the predictions.

Decisions are each fold model's own: a fold row's ``scores`` against that row's ``thresholds`` (the
thresholds tuned inside the fold), which is how the shipped model decides on its own scores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.corpus import Passage, load_examples, read_jsonl
from policyclf.errors import DataError, ModelError
from policyclf.labels import CATEGORIES, labels_to_matrix

ERROR_RATES_FILE = "error_rates.json"
FORMAT_VERSION = 1
# per-document statistics, each a list of 7 numbers (one per category)
STAT_KEYS = ("pos", "tp", "fp", "score_pos", "score_neg", "doc_gold", "doc_pred")


@dataclass
class ErrorRates:
    """Per-document held-out statistics; rates are ratios of their sums (so documents can be resampled).

    Attributes:
        docs: document ids; ``regions`` and ``doc_types`` alongside.
        n: passages per document, shape (D,).
        stats: name → array (D, 7) for every name in ``STAT_KEYS``.
        info: provenance (source files, how the decisions were made).
    """

    docs: list[str]
    regions: list[str]
    doc_types: list[str]
    n: np.ndarray
    stats: dict[str, np.ndarray]
    info: dict[str, Any]

    def __len__(self) -> int:
        return len(self.docs)

    def subset(self, keep: np.ndarray | Sequence[bool], why: str) -> "ErrorRates":
        """The documents where ``keep`` is true (``why`` is recorded in ``info['subset']``)."""
        keep = np.asarray(keep, dtype=bool)
        if not keep.any():
            raise DataError(f"no held-out documents left for the error rates ({why})")
        pick = np.flatnonzero(keep)
        return ErrorRates([self.docs[i] for i in pick], [self.regions[i] for i in pick],
                          [self.doc_types[i] for i in pick], self.n[pick],
                          {k: v[pick] for k, v in self.stats.items()},
                          {**self.info, "subset": why})

    def without_region(self, region: str) -> "ErrorRates":
        """Rates from every held-out region but ``region`` (for non-circular checks on that region)."""
        return self.subset(np.array(self.regions) != region, f"all regions but {region}")

    def of_doc_type(self, doc_type: str) -> "ErrorRates":
        """Rates from held-out documents of one type only (``regulation`` or ``work_report``)."""
        if doc_type not in set(self.doc_types):
            raise DataError(f"no held-out documents of type {doc_type!r} in the error rates; "
                            f"they have {', '.join(sorted(set(self.doc_types)))}")
        return self.subset(np.array(self.doc_types) == doc_type, f"doc_type {doc_type}")

    def counts(self, weights: np.ndarray | None = None, unit: str = "passage") -> dict[str, np.ndarray]:
        """Summed counts per category; ``weights`` (B, D) gives one row per bootstrap resample.

        Returns arrays shaped (7,) without weights, (B, 7) with them: ``pos``, ``neg``, ``tp``, ``fp``
        and (passage unit only) ``score_pos``, ``score_neg``.
        """
        w = np.ones(len(self.docs)) if weights is None else weights
        if unit == "document":
            gold, pred = self.stats["doc_gold"], self.stats["doc_pred"]
            return {"pos": w @ gold, "neg": w @ (1 - gold), "tp": w @ (gold * pred),
                    "fp": w @ ((1 - gold) * pred)}
        pos = w @ self.stats["pos"]
        return {"pos": pos, "neg": (w @ self.n)[..., None] - pos, "tp": w @ self.stats["tp"],
                "fp": w @ self.stats["fp"], "score_pos": w @ self.stats["score_pos"],
                "score_neg": w @ self.stats["score_neg"]}

    def rates(self, method: str = "acc", unit: str = "passage", weights: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
        """(TPR, FPR) per category: of the decisions (``acc``) or mean scores (``pacc``); NaN where a
        class has no held-out examples."""
        c = self.counts(weights, unit)
        with np.errstate(divide="ignore", invalid="ignore"):
            if method == "pacc":
                if unit != "passage":
                    raise DataError("the PACC correction is defined for --unit passage only; use --method acc")
                return c["score_pos"] / c["pos"], c["score_neg"] / c["neg"]
            return c["tp"] / c["pos"], c["fp"] / c["neg"]

    def summary(self) -> dict[str, Any]:
        """Totals per category (passage and document level) for the JSON file and the report."""
        c, d = self.counts(), self.counts(unit="document")
        tpr, fpr = self.rates()
        out = {}
        for j, cat in enumerate(CATEGORIES):
            out[cat] = {"passages_pos": int(c["pos"][j]), "passages_neg": int(c["neg"][j]), "tp": int(c["tp"][j]),
                        "fp": int(c["fp"][j]), "tpr": float(tpr[j]), "fpr": float(fpr[j]),
                        "docs_pos": int(d["pos"][j]), "docs_neg": int(d["neg"][j])}
        return out

    def to_json(self) -> dict[str, Any]:
        return {"policyclf_error_rates": FORMAT_VERSION, **self.info, "categories": list(CATEGORIES),
                "n_documents": len(self.docs), "n_passages": int(self.n.sum()), "totals": self.summary(),
                "documents": [{"doc": d, "region": r, "doc_type": t, "n": int(n),
                               **{k: [round(float(x), 5) for x in self.stats[k][i]] for k in STAT_KEYS}}
                              for i, (d, r, t, n) in enumerate(zip(self.docs, self.regions, self.doc_types, self.n))]}

    @classmethod
    def from_json(cls, obj: dict[str, Any], where: str = "error_rates.json") -> "ErrorRates":
        if obj.get("policyclf_error_rates") != FORMAT_VERSION:
            raise ModelError(f"{where}: not a policyclf error-rates file (format {FORMAT_VERSION})")
        if obj.get("categories") != list(CATEGORIES):
            raise ModelError(f"{where}: categories {obj.get('categories')} differ from the codebook's")
        docs = obj["documents"]
        if not docs:
            raise ModelError(f"{where}: no documents")
        info = {k: v for k, v in obj.items()
                if k not in ("policyclf_error_rates", "categories", "documents", "totals", "n_documents", "n_passages")}
        return cls([d["doc"] for d in docs], [d["region"] for d in docs], [d["doc_type"] for d in docs],
                   np.array([d["n"] for d in docs], dtype=float),
                   {k: np.array([d[k] for d in docs], dtype=float) for k in STAT_KEYS}, info)


def doc_of(passage_id: str) -> str:
    """The document of a passage id: ``path:007`` → ``path``; ``region-reg-abcd1234-007`` → ``region-reg-abcd1234``."""
    for sep in (":", "-"):
        head, _, tail = passage_id.rpartition(sep)
        if head and tail.isdigit():
            return head
    return passage_id


def compute_error_rates(prediction_files: Sequence[str | os.PathLike[str]], annotation_files: Sequence[str | os.PathLike[str]],
                        passages: dict[str, Passage], *, source_note: str = "") -> ErrorRates:
    """Error rates from held-out prediction files (rows of ``passage_id``, ``scores`` and ``thresholds``
    lists in codebook order) and the final annotation files that hold their gold labels.

    Raises:
        DataError: a prediction row without gold labels, a malformed row, or a passage predicted twice.
    """
    gold = {e.passage_id: e.labels for e in load_examples(annotation_files, passages)}
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for f in prediction_files:
        for lineno, rec in read_jsonl(Path(f)):
            pid = rec.get("passage_id")
            scores, thr = rec.get("scores"), rec.get("thresholds")
            if not isinstance(scores, list) or not isinstance(thr, list) or len(scores) != 7 or len(thr) != 7:
                raise DataError(f"{f} line {lineno}: expected 'scores' and 'thresholds' lists of 7 numbers")
            if pid not in gold:
                raise DataError(f"{f} line {lineno}: {pid!r} has no gold labels in {', '.join(map(str, annotation_files))}")
            if pid in rows:
                raise DataError(f"{f} line {lineno}: {pid!r} is predicted twice")
            rows[pid] = (np.array(scores, dtype=float), np.array(thr, dtype=float))
    if not rows:
        raise DataError("no held-out predictions in " + ", ".join(map(str, prediction_files)))
    by_doc: dict[str, list[str]] = {}
    for pid in rows:
        by_doc.setdefault(passages[pid].doc_id, []).append(pid)
    docs, regions, types, n = [], [], [], []
    stats: dict[str, list[np.ndarray]] = {k: [] for k in STAT_KEYS}
    for doc, pids in by_doc.items():
        y = labels_to_matrix([gold[p] for p in pids]).astype(float)
        s = np.array([rows[p][0] for p in pids])
        pred = (s >= np.array([rows[p][1] for p in pids])).astype(float)
        docs.append(doc)
        regions.append(passages[pids[0]].region)
        types.append(passages[pids[0]].doc_type)
        n.append(len(pids))
        for key, val in (("pos", y.sum(0)), ("tp", (y * pred).sum(0)), ("fp", ((1 - y) * pred).sum(0)),
                         ("score_pos", (y * s).sum(0)), ("score_neg", ((1 - y) * s).sum(0)),
                         ("doc_gold", y.max(0)), ("doc_pred", pred.max(0))):
            stats[key].append(val)
    info = {"computed_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "predictions": [str(f) for f in prediction_files], "annotations": [str(f) for f in annotation_files],
            "decisions": "each fold model's scores against that fold's own thresholds (stored in each row)",
            "note": source_note}
    return ErrorRates(docs, regions, types, np.array(n, dtype=float),
                      {k: np.array(v, dtype=float) for k, v in stats.items()}, info)


def save_error_rates(rates: ErrorRates, model_dir: str | os.PathLike[str]) -> Path:
    """Write ``error_rates.json`` into a model directory (atomic)."""
    from policyclf.jsonutil import write_json

    path = Path(model_dir) / ERROR_RATES_FILE
    tmp = path.with_suffix(".json.tmp")
    write_json(tmp, rates.to_json())
    os.replace(tmp, path)
    return path


def load_error_rates(model_dir: str | os.PathLike[str]) -> ErrorRates:
    """The error rates stored with a model.

    Raises:
        ModelError: no ``error_rates.json`` in the model directory, or an unreadable one.
    """
    path = Path(model_dir) / ERROR_RATES_FILE
    if not path.is_file():
        raise ModelError(f"{model_dir} has no {ERROR_RATES_FILE} (held-out error rates); compute it with "
                         f"scripts/model_error_rates.py {model_dir} --predictions reports/NAME/predictions/BACKEND")
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: cannot read ({exc})") from exc
    return ErrorRates.from_json(obj, str(path))
