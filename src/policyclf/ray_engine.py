"""`policyclf label --engine ray`: the same per-document work on a Ray cluster via Ray Data.

Reading and segmenting run as a Ray Data ``map`` (one task per document, anywhere in the
cluster); scoring runs in ``map_batches`` actors that each load the model once. Both use the neutral
:mod:`policyclf.scoring` module, exactly as the local engine does. Results stream
back to the driver, which commits them to the same journal as the local engine, so resuming and
the output files are identical. Without ``RAY_ADDRESS`` a local Ray instance is started.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.errors import PolicyclfError
from policyclf.scoring import DocResult, documents_rows, process_document
from policyclf.segment import DEFAULT_MAX_PASSAGES


def _segment_row(row: dict[str, Any]) -> dict[str, Any]:
    res = process_document((row["root"], row["rel"], row["max_bytes"], row["max_passages"]))
    return {"rel": res.rel, "sha1": res.sha1, "texts": json.dumps(res.texts, ensure_ascii=False),
            "seqs": json.dumps(res.seqs), "headings": json.dumps(res.headings, ensure_ascii=False),
            "error": res.error or "", "warnings": json.dumps(res.warnings, ensure_ascii=False)}


class _Scorer:
    """A Ray Data actor holding one loaded model."""

    def __init__(self, model_dir: str, batch_size: int, runtime: dict[str, Any]) -> None:
        from policyclf.models.base import load_model

        self.model = load_model(model_dir, **runtime)  # the driver's device and precision, not a new choice
        self.batch_size = batch_size

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        docs = [DocResult(str(rel), str(sha1), json.loads(texts), json.loads(seqs), str(error) or None, json.loads(heads))
                for rel, sha1, texts, seqs, heads, error in zip(batch["rel"], batch["sha1"], batch["texts"], batch["seqs"],
                                                                batch["headings"], batch["error"])]
        rows_out = [json.dumps(rows, ensure_ascii=False) for rows in documents_rows(self.model, docs, self.batch_size)]
        return {"rel": batch["rel"], "sha1": batch["sha1"], "error": batch["error"], "warnings": batch["warnings"],
                "rows": np.array(rows_out, dtype=object)}


def label_with_ray(root: str, rels: list[str], model_dir: str | Path, max_bytes: int,
                   batch_size: int, runtime: dict[str, Any] | None = None,
                   max_passages: int = DEFAULT_MAX_PASSAGES) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """Yield (DocResult-like, rows) per document, labelled through Ray Data."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise PolicyclfError("--engine ray needs Ray: pip install 'policyclf[ray]'") from exc
    if not rels:
        return
    if not ray.is_initialized():
        ray.init(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ds = ray.data.from_items([{"root": root, "rel": r, "max_bytes": max_bytes, "max_passages": max_passages}
                              for r in rels])
    ds = ds.map(_segment_row)
    ds = ds.map_batches(_Scorer, fn_constructor_args=(str(model_dir), batch_size, runtime or {}), batch_size=8,
                        concurrency=1, batch_format="numpy")
    for row in ds.iter_rows():
        res = DocResult(str(row["rel"]), str(row["sha1"]), error=str(row["error"]) or None,
                        warnings=json.loads(row["warnings"]))
        yield res, json.loads(row["rows"])
