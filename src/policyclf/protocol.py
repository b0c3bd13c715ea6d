"""The evaluation protocol: the training runs a report needs, and their per-passage predictions.

Splits: leave-one-region-out over the six regions (train on every annotated passage of the
other five regions, test on the held-out region's ``six_regions`` passages, so numbers stay
comparable as the pool grows), and all six regions → the unseen-province test set. Predictions (passage ids, scores, thresholds; no text) are saved per split under
``OUT/predictions/BACKEND/SPLIT.jsonl``, so runs resume and reports rebuild without retraining.
"""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

from policyclf.corpus import REGIONS, Example, load_examples, load_passages
from policyclf.scoring import score_texts
from policyclf.training import build_model, fit_examples, save_model_atomic, save_predictions, training_examples


TEST_POOL = "six_regions"  # leave-one-region-out tests on these passages only, whatever else is trained on


def unseen_examples(config: Any, corpus: str | None = None) -> list[Example]:
    """The unseen-province test passages of ``config`` (empty if its file is missing)."""
    test_file = config.resolve(config.report.test_annotations)
    if not test_file.is_file():
        return []
    return load_examples([test_file], load_passages(corpus or config.data.corpus))


def prediction_path(out: Path, backend: str, name: str) -> Path:
    return out / "predictions" / backend / f"{name}.jsonl"


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """Saved per-passage scores: passage_id → {scores, thresholds, ...}."""
    with path.open(encoding="utf-8") as f:
        return {r["passage_id"]: r for r in map(json.loads, f)}


def run_protocol(config: Any, out: str | Path, *, corpus: str | None = None,
                 save_models: str | Path | None = None, log: Any = print) -> Path:
    """Train and score every split the report needs, saving per-passage predictions.

    Splits: leave-one-region-out over the six regions (thresholds tuned inside the training
    regions), and all six regions → the unseen-province test set. Both backends get identical
    splits and seeds. A split whose predictions file exists is skipped, so an interrupted run
    resumes and a report can be rebuilt without retraining.
    """
    out = Path(out)
    all_train = training_examples(config, corpus)
    unseen = unseen_examples(config, corpus)
    for backend in config.report.backends:
        cfg = copy.deepcopy(config)
        cfg.model.backend = backend
        splits = [(f"loro-{r}", [e for e in all_train if e.passage.region != r],
                   [e for e in all_train if e.passage.region == r and e.passage.pool == TEST_POOL])
                  for r in (config.report.loro_regions or REGIONS)]
        if config.report.unseen:
            splits.append(("unseen", all_train, unseen))
        for name, train_set, test_set in splits:
            path = prediction_path(out, backend, name)
            model_target = Path(save_models) / backend if save_models and name == "unseen" else None
            need_model = model_target is not None and not (model_target / "meta.json").is_file()
            if not test_set or (path.is_file() and not need_model):
                continue
            started = time.time()
            log(f"[{backend}] {name}: training on {len(train_set)} passages, scoring {len(test_set)}")
            model = fit_examples(build_model(cfg), train_set)
            train_seconds = round(time.time() - started, 1)
            if model_target is not None:
                save_model_atomic(model, model_target, cfg, train_set)
            if not path.is_file():
                scores = score_texts(model, [e.text for e in test_set], batch_size=64,
                                     headings=[e.passage.heading for e in test_set])
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                save_predictions(tmp, test_set, scores, model.thresholds_, split=name, train_seconds=train_seconds)
                tmp.replace(path)
            log(f"[{backend}] {name}: done in {time.time() - started:.0f}s")
    return out
