"""Evaluation of trained models on annotated passages, and the evaluation reports."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from policyclf.corpus import annotations_dir, load_examples, load_passages
from policyclf.errors import DataError
from policyclf.metrics import multilabel_report
from policyclf.models.base import labels_to_matrix, load_model, read_meta


def evaluate_model(model_dir: str | Path, annotations: Sequence[str | Path] | None = None,
                   regions: Sequence[str] | None = None, corpus: str | None = None) -> dict[str, Any]:
    """Scores of a model on annotated passages (default: the unseen-province test set).

    Returns the metrics plus a ``warning`` when the passages overlap the model's training data.
    """
    meta = read_meta(model_dir)
    files = [Path(f) for f in annotations] if annotations else [annotations_dir() / "other_provinces_test.jsonl"]
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: annotation file not found")
    passages = load_passages(corpus)
    examples = load_examples(files, passages, regions)
    if not examples:
        raise DataError(f"no annotated passages in {', '.join(map(str, files))} for regions {list(regions or [])}")
    model = load_model(model_dir)
    from policyclf.predict import Item, score_items

    scores = score_items(model, [Item(e.passage_id, e.text, e.passage.seq) for e in examples])
    result = multilabel_report(labels_to_matrix([e.labels for e in examples]), scores >= model.thresholds_)
    result = {"model": str(model_dir), "backend": meta["backend"], "annotations": [str(f) for f in files],
              "regions": sorted({e.passage.region for e in examples}), **result}
    trained_on = {Path(a).name for a in meta.get("training_data", {}).get("annotations", [])}
    if trained_on & {f.name for f in files}:
        result["warning"] = ("some of these passages were in the model's training data; "
                             "the scores are optimistic (use `policyclf report` for held-out numbers)")
    return result
