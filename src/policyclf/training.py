"""Fitting a model from a config, saving it as a model directory, and cross-validation splits."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.config import Config
from policyclf.corpus import (
    TEST_ONLY_POOL,
    Example,
    extension_source,
    load_examples,
    load_passages,
    training_fingerprint,
)
from policyclf.errors import DataError, PolicyclfError
from policyclf.labels import CATEGORIES
from policyclf.models.base import BaseClassifier
from policyclf.models.registry import backend_class


def build_model(config: Config) -> BaseClassifier:
    """An unfitted classifier of the configured backend."""
    return backend_class(config.model.backend).from_config(config)


def training_examples(config: Config, corpus: str | None = None) -> list[Example]:
    """The annotated passages a config trains on."""
    passages = load_passages(corpus or (config.resolve(config.data.corpus) if config.data.corpus else None))
    files = [config.resolve(f) for f in config.data.annotations]
    for f in files:
        if not f.is_file():
            raise DataError(f"{f}: annotation file not found (data.annotations in the config)")
    if TEST_ONLY_POOL in config.data.pools:
        raise DataError(f"data.pools names {TEST_ONLY_POOL!r}: that is the unseen-province test set, never trained on")
    examples = load_examples(files, passages, config.data.regions or None, config.data.rounds, config.data.pools or None)
    if config.data.exclude_sources:
        examples = [e for e in examples if extension_source(e.passage) not in config.data.exclude_sources]
    leaked = [e.passage_id for e in examples if e.passage.pool == TEST_ONLY_POOL]
    if leaked:
        raise DataError(f"data.annotations hold {len(leaked)} passages of the unseen-province test pool "
                        f"{TEST_ONLY_POOL!r} (e.g. {leaked[0]}); they are never trained on — remove that file "
                        "from data.annotations (it belongs in report.test_annotations)")
    if not examples:
        raise DataError(f"no annotated passages in {', '.join(map(str, files))}"
                        + (f" for regions {config.data.regions}" if config.data.regions else ""))
    return examples


def fit_examples(model: BaseClassifier, examples: Sequence[Example]) -> BaseClassifier:
    """Fit ``model`` on examples, keeping each document in one inner fold."""
    return model.fit([e.text for e in examples], [list(e.labels) for e in examples],
                     groups=[e.passage.doc_id for e in examples], headings=[e.passage.heading for e in examples])


def label_counts(examples: Sequence[Example]) -> dict[str, Any]:
    """Passages, per-category positives, and unlabelled passages of a training set."""
    c = Counter(lab for e in examples for lab in e.labels)
    return {"passages": len(examples), "per_category": {k: c.get(k, 0) for k in CATEGORIES},
            "unlabelled": sum(1 for e in examples if not e.labels),
            "regions": dict(Counter(e.passage.region for e in examples)),
            "pools": dict(Counter(e.passage.pool for e in examples)),
            "extension_sources": dict(Counter(s for e in examples if (s := extension_source(e.passage))))}


def prepare_output_dir(output: str | Path, force: bool) -> Path:
    """Refuse to overwrite an existing non-empty directory unless ``force``."""
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())) and not force:
        raise PolicyclfError(f"{output} already exists; pass --force to overwrite it")
    return output


def training_meta(model: BaseClassifier, examples: Sequence[Example], config: Config) -> dict[str, Any]:
    """What meta.json records about a model's training data and validation."""
    return {"training_data": {"fingerprint": training_fingerprint(examples),
                              "annotations": list(config.data.annotations), **label_counts(examples)},
            "validation": getattr(model, "validation_", None)}


def _readable_by_all(folder: Path) -> None:
    """Folder and files with the usual permissions under the current umask (not mkdtemp's 0700)."""
    import os

    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)
    for f in folder.iterdir():
        if f.is_file():
            os.chmod(f, 0o666 & ~umask)


def write_dir_atomic(output: str | Path, fill: Callable[[Path], None]) -> Path:
    """Let ``fill`` write a folder under a temporary name beside ``output``, then rename it into place.

    A run that dies leaves no half-written folder, and an existing ``output`` is replaced (never
    merged into) only once the new one is complete.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        fill(tmp)
        _readable_by_all(tmp)  # mkdtemp makes 0700 folders; a model is meant to be shared
        if output.exists():
            old = output.with_name(f".{output.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            output.rename(old)
            tmp.rename(output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(output)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return output


def save_model_atomic(model: BaseClassifier, output: str | Path, config: Config,
                      examples: Sequence[Example]) -> Path:
    """Write a model directory atomically (:func:`write_dir_atomic`)."""
    return write_dir_atomic(output, lambda tmp: model.save(tmp, extra_meta=training_meta(model, examples, config),
                                                           config=config))


def train(config: Config, output: str | Path, *, force: bool = False, corpus: str | None = None) -> Path:
    """Train the configured backend on the annotated passages and write a model directory (atomically)."""
    output = prepare_output_dir(output, force)
    examples = training_examples(config, corpus)
    model = fit_examples(build_model(config), examples)
    return save_model_atomic(model, output, config, examples)


def save_predictions(path: str | Path, examples: Sequence[Example], scores: np.ndarray,
                     thresholds: np.ndarray, **fields: Any) -> None:
    """Per-passage scores as jsonl (passage ids and probabilities only, no text)."""
    with Path(path).open("w", encoding="utf-8") as f:
        for e, row in zip(examples, scores):
            f.write(json.dumps({"passage_id": e.passage_id, **fields,
                                "scores": [round(float(s), 5) for s in row],
                                "thresholds": [round(float(t), 4) for t in thresholds]}) + "\n")
