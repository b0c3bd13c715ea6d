"""Fitting a model from a config, saving it as a model directory, and cross-validation splits."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.config import Config, dump_config
from policyclf.corpus import REPO_ROOT, Example, load_examples, load_passages, training_fingerprint
from policyclf.errors import DataError, PolicyclfError
from policyclf.labels import CATEGORIES
from policyclf.models.base import BaseClassifier


def build_model(config: Config) -> BaseClassifier:
    """An unfitted classifier of the configured backend."""
    if config.model.backend == "tfidf":
        from policyclf.models.tfidf import TfidfClassifier

        b = config.baseline
        return TfidfClassifier(char_ngram_max=b.char_ngram_max, use_words=b.use_words, C=b.C,
                               max_features=b.max_features, threshold_folds=b.threshold_folds,
                               seed=config.training.seed)
    from policyclf.models.bert import BertClassifier

    return BertClassifier.from_config(config)


def resolve_path(path: str | Path) -> Path:
    """A config path: absolute, relative to the working directory, or to the repository root."""
    p = Path(path)
    if p.is_absolute() or p.exists():
        return p
    return REPO_ROOT / p


def training_examples(config: Config, corpus: str | None = None) -> list[Example]:
    """The annotated passages a config trains on."""
    passages = load_passages(corpus or config.data.corpus)
    files = [resolve_path(f) for f in config.data.annotations]
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: annotation file not found (data.annotations in the config)")
    examples = load_examples(files, passages, config.data.regions or None)
    if not examples:
        raise DataError(f"no annotated passages in {', '.join(map(str, files))}"
                        + (f" for regions {config.data.regions}" if config.data.regions else ""))
    return examples


def fit_examples(model: BaseClassifier, examples: Sequence[Example]) -> BaseClassifier:
    """Fit ``model`` on examples, keeping each document in one inner fold."""
    return model.fit([e.text for e in examples], [list(e.labels) for e in examples],
                     groups=[e.passage.doc_id for e in examples])


def label_counts(examples: Sequence[Example]) -> dict[str, Any]:
    """Passages, per-category positives, and unlabelled passages of a training set."""
    c = Counter(lab for e in examples for lab in e.labels)
    return {"passages": len(examples), "per_category": {k: c.get(k, 0) for k in CATEGORIES},
            "unlabelled": sum(1 for e in examples if not e.labels),
            "regions": dict(Counter(e.passage.region for e in examples))}


def prepare_output_dir(output: str | Path, force: bool) -> Path:
    """Refuse to overwrite an existing non-empty directory unless ``force``."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not force:
        raise PolicyclfError(f"{output} already exists; pass --force to overwrite it")
    return output


def train(config: Config, output: str | Path, *, force: bool = False, corpus: str | None = None) -> Path:
    """Train the configured backend on the annotated passages and write a model directory.

    The directory is written under a temporary name and renamed at the end, so a run that
    dies leaves no half-written model.
    """
    output = prepare_output_dir(output, force)
    examples = training_examples(config, corpus)
    model = fit_examples(build_model(config), examples)
    extra = {
        "training_data": {"fingerprint": training_fingerprint(examples),
                          "annotations": list(config.data.annotations), **label_counts(examples)},
        "validation": getattr(model, "validation_", None),
    }
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        model.save(tmp, extra_meta=extra)
        dump_config(config, tmp / "config.toml")
        if output.exists():
            shutil.rmtree(output)
        tmp.rename(output)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return output


def save_predictions(path: str | Path, examples: Sequence[Example], scores: np.ndarray,
                     thresholds: np.ndarray, **fields: Any) -> None:
    """Per-passage scores as jsonl (passage ids and probabilities only, no text)."""
    with Path(path).open("w", encoding="utf-8") as f:
        for e, row in zip(examples, scores):
            f.write(json.dumps({"passage_id": e.passage_id, **fields,
                                "scores": [round(float(s), 5) for s in row],
                                "thresholds": [round(float(t), 4) for t in thresholds]}) + "\n")
