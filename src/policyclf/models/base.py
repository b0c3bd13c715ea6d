"""The protocol both backends follow, and what they share: label matrices, thresholds, meta.json."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.errors import ConfigError, ModelError, ModelFileError
from policyclf.labels import CATEGORIES, matrix_to_labels
from policyclf.models.registry import BACKENDS, backend_class

META_FILE = "meta.json"
CONFIG_FILE = "config.toml"
RESTORE = "restore it (`git checkout`, `git lfs pull`) or retrain the model"
_LFS_POINTER = b"version https://git-lfs"


def missing_file(path: Path) -> ModelFileError:
    """The error for a model file that is not there."""
    return ModelFileError(f"{path} is missing; the model directory is incomplete: {RESTORE}")


def damaged_file(path: Path, reason: str) -> ModelFileError:
    """The error for a model file that is there but cannot be read (truncated, overwritten, half-copied)."""
    reason = " ".join(str(reason).split())[:200]
    return ModelFileError(f"{path} is damaged or incomplete ({reason}); {RESTORE}")


def check_model_file(path: Path) -> None:
    """Raise :class:`ModelFileError` if a model file is missing or is a Git LFS pointer left in its place.

    Raises:
        ModelFileError: naming the file and how to restore it.
    """
    if not path.is_file():
        raise missing_file(path)
    with path.open("rb") as f:
        head = f.read(len(_LFS_POINTER))
    if head == _LFS_POINTER:
        raise ModelFileError(f"{path} is a Git LFS pointer, not the file itself: run `git lfs pull` "
                             "(or retrain the model)")


class BaseClassifier:
    """Shared behaviour: ``predict`` from ``predict_proba``, per-category ``thresholds_``, persistence.

    Subclasses implement ``fit``, ``predict_proba``, ``_save_weights`` and ``_load_weights``, and
    list in ``CONFIG_KEYS`` which config field (section, key) feeds each constructor argument:
    that one table builds a model from a config and writes the config back into a model
    directory, whose ``config.toml`` is what :meth:`load` rebuilds the model from.
    Constructor arguments are only stored; learned state ends with an underscore.
    """

    backend = "base"
    labels: tuple[str, ...] = CATEGORIES
    CONFIG_KEYS: dict[str, tuple[str, str]] = {}  # constructor argument -> (config section, key)
    RUNTIME_OPTIONS: tuple[str, ...] = ()  # load-time options the backend understands (others are ignored)
    thresholds_: np.ndarray

    @classmethod
    def from_config(cls, config: Any, **runtime: Any) -> "BaseClassifier":
        """An unfitted model with the settings of ``config``; ``runtime`` options (device, precision) win."""
        kwargs = {arg: getattr(getattr(config, sec), key) for arg, (sec, key) in cls.CONFIG_KEYS.items()}
        return cls(**{**kwargs, **runtime})

    def params(self) -> dict[str, Any]:
        """Constructor arguments that shape the model (what ``config.toml`` records)."""
        return {arg: getattr(self, arg) for arg in self.CONFIG_KEYS}

    def to_config(self, base: Any = None) -> Any:
        """``base`` (or the default config) with this model's settings written into it."""
        from policyclf.config import Config

        config = (base or Config()).model_copy(deep=True)
        config.model.backend = self.backend
        for arg, (sec, key) in self.CONFIG_KEYS.items():
            setattr(getattr(config, sec), key, getattr(self, arg))
        return config

    use_heading: bool = False  # whether the model reads each passage's chapter/section heading

    def predict_proba(self, texts: Sequence[str], headings: Sequence[str] | None = None) -> np.ndarray:
        """(n, 7) probabilities; ``headings`` (one per text) is context for models with ``use_heading``."""
        raise NotImplementedError

    def runtime_info(self) -> dict[str, Any]:
        """Where and how the model computes (device, precision), for run metadata and logs."""
        return {"device": "cpu", "precision": "float64"}

    def predict(self, texts: Sequence[str], headings: Sequence[str] | None = None) -> list[list[str]]:
        """Category ids per text: scores at or above each category's tuned threshold."""
        return matrix_to_labels(self.predict_proba(texts, headings) >= self.thresholds_, self.labels)

    def save(self, directory: str | Path, extra_meta: dict[str, Any] | None = None, config: Any = None) -> Path:
        """Write the model directory: weights, ``config.toml`` and ``meta.json``.

        Args:
            config: the resolved experiment config the model was trained from (default: the
                default config with this model's settings). The training device is not kept.
        """
        from policyclf.config import dump_config

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_weights(directory)
        config = self.to_config(config)
        config.training.device = "auto"  # where it trained says nothing about where it may run
        dump_config(config, directory / CONFIG_FILE)
        meta = {
            "policyclf_model": 1,
            "backend": self.backend,
            "labels": list(self.labels),
            "thresholds": [round(float(t), 6) for t in self.thresholds_],
            "versions": package_versions(),
            "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            **(extra_meta or {}),
        }
        (directory / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
        return directory

    @classmethod
    def load(cls, directory: str | Path, **runtime: Any) -> "BaseClassifier":
        """Rebuild a saved model from its ``config.toml``, thresholds and weights.

        Args:
            runtime: run-time options of the backend (e.g. ``device``, ``inference_dtype``).
        """
        meta = read_meta(directory)
        if meta["backend"] != cls.backend:
            raise ModelError(f"{directory}: a {meta['backend']!r} model, not {cls.backend!r}")
        runtime = {k: v for k, v in runtime.items() if k in cls.RUNTIME_OPTIONS and v is not None}
        model = cls.from_config(read_model_config(directory), **runtime)
        model.thresholds_ = np.asarray(meta["thresholds"], dtype=np.float64)
        model._load_weights(Path(directory))
        return model

    def _save_weights(self, directory: Path) -> None:
        raise NotImplementedError

    def _load_weights(self, directory: Path) -> None:
        raise NotImplementedError


def read_model_config(directory: str | Path) -> Any:
    """The resolved config saved in a model directory.

    Raises:
        ModelError: missing or invalid ``config.toml``.
    """
    from policyclf.config import load_config

    import tomllib

    path = Path(directory) / CONFIG_FILE
    check_model_file(path)
    try:
        tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise damaged_file(path, f"not valid TOML: {exc}") from exc
    try:
        return load_config(path)
    except ConfigError as exc:
        raise ModelError(f"{directory}: {exc}; the model was saved by another policyclf version, or its "
                         f"{CONFIG_FILE} was edited by hand — fix the setting or retrain the model") from exc


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
    check_model_file(path)
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise damaged_file(path, f"not valid JSON: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("policyclf_model") != 1:
        raise ModelError(f"{path}: not a policyclf model meta file")
    if meta.get("backend") not in BACKENDS:
        raise ModelError(f"{path}: unknown backend {meta.get('backend')!r}; expected one of {', '.join(BACKENDS)}")
    if tuple(meta.get("labels", ())) != CATEGORIES:
        raise ModelError(f"{path}: the model's label set {meta.get('labels')} is not this codebook's "
                         f"({', '.join(CATEGORIES)}); retrain it")
    thresholds = meta.get("thresholds")
    if (not isinstance(thresholds, list) or len(thresholds) != len(CATEGORIES)
            or not all(isinstance(t, (int, float)) for t in thresholds)):
        raise damaged_file(path, f"expected {len(CATEGORIES)} numeric thresholds, found {thresholds!r:.60}")
    return meta


def load_model(directory: str | Path, **runtime: Any) -> BaseClassifier:
    """Load a model directory of any registered backend (torch is imported only for BERT)."""
    return backend_class(read_meta(directory)["backend"]).load(directory, **runtime)


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
