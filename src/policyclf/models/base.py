"""The protocol both backends follow, and what they share: label matrices, thresholds, meta.json."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.errors import ModelError
from policyclf.labels import CATEGORIES

META_FILE = "meta.json"
BACKENDS = ("tfidf", "bert")


def labels_to_matrix(labels: Sequence[Sequence[str]], categories: Sequence[str] = CATEGORIES) -> np.ndarray:
    """Binary (n, k) matrix from lists of category ids.

    Raises:
        ModelError: for a label outside ``categories``.
    """
    index = {c: i for i, c in enumerate(categories)}
    y = np.zeros((len(labels), len(categories)), dtype=np.int8)
    for row, labs in enumerate(labels):
        for lab in labs:
            if lab not in index:
                raise ModelError(f"unknown label {lab!r}; expected one of {', '.join(categories)}")
            y[row, index[lab]] = 1
    return y


def matrix_to_labels(y: np.ndarray, categories: Sequence[str] = CATEGORIES) -> list[list[str]]:
    """Lists of category ids from a binary (n, k) matrix."""
    return [[categories[j] for j in np.flatnonzero(row)] for row in y]


class BaseClassifier:
    """Shared behaviour: ``predict`` from ``predict_proba`` and per-category ``thresholds_``.

    Subclasses implement ``fit``, ``predict_proba``, ``_save_weights`` and ``_load_weights``.
    Constructor arguments are only stored; learned state ends with an underscore.
    """

    backend = "base"
    labels: tuple[str, ...] = CATEGORIES
    thresholds_: np.ndarray

    def params(self) -> dict[str, Any]:
        """Constructor arguments, for meta.json and for rebuilding the model on load."""
        raise NotImplementedError

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        raise NotImplementedError

    def predict(self, texts: Sequence[str]) -> list[list[str]]:
        """Category ids per text: scores at or above each category's tuned threshold."""
        return matrix_to_labels(self.predict_proba(texts) >= self.thresholds_, self.labels)

    def save(self, directory: str | Path, extra_meta: dict[str, Any] | None = None) -> Path:
        """Write the model directory: weights plus ``meta.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_weights(directory)
        meta = {
            "policyclf_model": 1,
            "backend": self.backend,
            "labels": list(self.labels),
            "thresholds": [round(float(t), 6) for t in self.thresholds_],
            "params": self.params(),
            "versions": package_versions(),
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(extra_meta or {}),
        }
        (directory / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "BaseClassifier":
        meta = read_meta(directory)
        if meta["backend"] != cls.backend:
            raise ModelError(f"{directory}: a {meta['backend']!r} model, not {cls.backend!r}")
        model = cls(**meta["params"])
        model.thresholds_ = np.asarray(meta["thresholds"], dtype=np.float64)
        model._load_weights(Path(directory))
        return model

    def _save_weights(self, directory: Path) -> None:
        raise NotImplementedError

    def _load_weights(self, directory: Path) -> None:
        raise NotImplementedError


def read_meta(directory: str | Path) -> dict[str, Any]:
    """``meta.json`` of a model directory, checked to be a policyclf model with our label set.

    Raises:
        ModelError: missing directory, not a policyclf model, unknown backend or other labels.
    """
    directory = Path(directory)
    path = directory / META_FILE
    if not directory.is_dir():
        raise ModelError(f"{directory}: no such model directory")
    if not path.is_file():
        raise ModelError(f"{directory}: not a policyclf model (no {META_FILE}); "
                         "train one with `policyclf train CONFIG -o DIR`")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(meta, dict) or meta.get("policyclf_model") != 1:
        raise ModelError(f"{path}: not a policyclf model meta file")
    if meta.get("backend") not in BACKENDS:
        raise ModelError(f"{path}: unknown backend {meta.get('backend')!r}; expected one of {', '.join(BACKENDS)}")
    if tuple(meta.get("labels", ())) != CATEGORIES:
        raise ModelError(f"{path}: the model's label set {meta.get('labels')} is not this codebook's "
                         f"({', '.join(CATEGORIES)}); retrain it")
    return meta


def load_model(directory: str | Path) -> BaseClassifier:
    """Load a model directory of either backend (torch is imported only for BERT)."""
    meta = read_meta(directory)
    if meta["backend"] == "tfidf":
        from policyclf.models.tfidf import TfidfClassifier

        return TfidfClassifier.load(directory)
    from policyclf.models.bert import BertClassifier

    return BertClassifier.load(directory)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages that shape a model's scores."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in ("policyclf", "scikit-learn", "jieba", "numpy", "skops", "torch", "transformers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
