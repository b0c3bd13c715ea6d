"""A shallow student distilled from the BERT backend: fewer encoder layers, the same interface.

``fit`` gets a teacher — the saved model named by ``distill.teacher``, or, when that is empty,
a ``bert`` model trained inside the fit on the same passages with the [model]/[training]
settings (so in leave-one-region-out no held-out region reaches the student through its
teacher) — scores the training passages plus ``crops`` random sentence spans of each with it,
and trains a student made of the bottom ``student_layers`` layers of the same base model on those
scores (soft targets). The student keeps a gold-labelled validation split for early stopping and
tunes its own thresholds on it. Only the student is stored; inference never touches the teacher.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.errors import ModelError
from policyclf.models.base import BaseClassifier
from policyclf.models.bert import BertClassifier

log = logging.getLogger("policyclf")
_SENTENCE_END = re.compile(r"(?<=[。；！？;!?\n])")


def sentence_crops(texts: Sequence[str], per_text: int, seed: int) -> list[tuple[int, str]]:
    """Up to ``per_text`` random contiguous spans of sentences of each text (never the whole text).

    Returns (index of the source text, span) pairs; texts of one sentence give none.
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[int, str]] = []
    for i, text in enumerate(texts):
        sents = [s for s in _SENTENCE_END.split(text) if s.strip()]
        if len(sents) < 2:
            continue
        seen: set[tuple[int, int]] = set()
        for _ in range(per_text):
            size = int(rng.integers(1, len(sents)))  # 1 .. n-1 sentences
            start = int(rng.integers(0, len(sents) - size + 1))
            if (start, size) in seen:
                continue
            seen.add((start, size))
            out.append((i, "".join(sents[start:start + size]).strip()))
    return out


def _cache_on() -> bool:
    """Whether teachers and their scores are kept between fits (``POLICYCLF_DISTILL_CACHE``, default on)."""
    import os

    return os.environ.get("POLICYCLF_DISTILL_CACHE", "1") not in ("0", "")


def _hash_data(h: Any, texts, headings, labels, groups) -> None:
    """Feed a fit's data (texts, headings, gold labels, groups) into the cache key ``h``."""
    for part in (list(texts), list(headings), [",".join(sorted(l)) for l in labels], list(groups or [])):
        h.update(json.dumps(part, ensure_ascii=False).encode())


def teacher_cache_path(params: dict[str, Any], texts, labels, groups, headings) -> Path | None:
    """Where a BERT teacher with settings ``params`` trained on exactly this data is kept, or None (cache off)."""
    import hashlib

    if not _cache_on():
        return None
    from policyclf.models.base_model import cache_dir

    h = hashlib.sha1(json.dumps(params, sort_keys=True, default=str).encode())
    _hash_data(h, [str(t) for t in texts], list(headings) if headings is not None else [""] * len(texts),
               labels, groups)
    return cache_dir() / "distill" / f"teacher-model-{h.hexdigest()[:20]}"


def _save_teacher(teacher: Any, kept: Path) -> None:
    import shutil

    tmp = kept.with_name(kept.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    teacher.save(tmp, extra_meta={"validation": getattr(teacher, "validation_", None)})
    shutil.rmtree(kept, ignore_errors=True)
    tmp.replace(kept)


def share_as_teacher(model: Any, texts, labels, groups=None, headings=None) -> Path | None:
    """Keep a ``bert`` model just trained on this data where a distilled fit on the same data looks for its teacher.

    ``report`` trains the teacher backend (``bert``) and the student (``distilled``, ``teacher = ""``)
    on identical splits; the student's fit would train the very same teacher again (same settings,
    data and seed). With this, it reads the kept one. Returns the path, or None where the distillation
    cache is off or the model is not a BertClassifier.
    """
    if type(model) is not BertClassifier:
        return None
    kept = teacher_cache_path({k: getattr(model, k) for k in BertClassifier.CONFIG_KEYS}, texts, labels, groups,
                              headings)
    if kept is None or (kept / "meta.json").is_file():
        return kept
    kept.parent.mkdir(parents=True, exist_ok=True)
    _save_teacher(model, kept)
    log.info("distillation: this bert model is kept as the teacher for a student on the same data (%s)", kept)
    return kept


class DistilledClassifier(BaseClassifier):
    """A BERT student with ``student_layers`` encoder layers, trained on a BERT teacher's scores.

    Args: every :class:`~policyclf.models.bert.BertClassifier` argument (they shape the teacher
    and, apart from depth, epochs, learning rate and patience, the student too), plus
        student_layers: encoder layers of the student (the base model's bottom layers, all trained).
        teacher: a saved ``bert`` model directory to distil from; '' = train one in ``fit``.
        crops: random sentence spans per training passage added as teacher-scored inputs.
        student_epochs, student_learning_rate, student_patience: the student's training.
    """

    backend = "distilled"

    CONFIG_KEYS = {**BertClassifier.CONFIG_KEYS,
                   "student_layers": ("distill", "student_layers"), "teacher": ("distill", "teacher"),
                   "crops": ("distill", "crops"), "student_epochs": ("distill", "epochs"),
                   "student_learning_rate": ("distill", "learning_rate"), "student_patience": ("distill", "patience")}
    RUNTIME_OPTIONS = BertClassifier.RUNTIME_OPTIONS

    def __init__(self, student_layers: int = 3, teacher: str = "", crops: int = 1, student_epochs: int = 6,
                 student_learning_rate: float = 2e-4, student_patience: int = 2, device: str = "auto",
                 progress: bool = True, **bert: Any) -> None:
        self.student_layers = student_layers
        self.teacher = teacher
        self.crops = crops
        self.student_epochs = student_epochs
        self.student_learning_rate = student_learning_rate
        self.student_patience = student_patience
        self.device = device
        self.progress = progress
        for k, v in bert.items():
            if k not in BertClassifier.CONFIG_KEYS and k not in BertClassifier.RUNTIME_OPTIONS:
                raise TypeError(f"unexpected argument {k!r}")
            setattr(self, k, v)
        defaults = BertClassifier()
        for k in BertClassifier.CONFIG_KEYS:
            if k not in bert:
                setattr(self, k, getattr(defaults, k))

    @classmethod
    def from_config(cls, config: Any, **runtime: Any) -> "DistilledClassifier":
        """A model with ``config``'s settings; the device comes from ``runtime`` or ``training.device``."""
        runtime.setdefault("device", config.training.device)
        model = super().from_config(config, **runtime)
        if model.teacher:  # a path in a config file is relative to that file, like the data paths
            model.teacher_path_ = str(config.resolve(model.teacher))
        return model

    @classmethod
    def load(cls, directory: str | Path, **runtime: Any) -> "DistilledClassifier":
        """Load a saved student on ``device`` (default ``auto``)."""
        runtime.setdefault("device", "auto")
        return super().load(directory, **runtime)

    # ------------------------------------------------------------ the two models
    def teacher_params(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in BertClassifier.CONFIG_KEYS}

    def student_params(self) -> dict[str, Any]:
        """The student's BertClassifier settings: the teacher's, at ``student_layers`` depth, all trained."""
        return {**self.teacher_params(), "encoder_layers": self.student_layers, "trainable_layers": self.student_layers,
                "epochs": self.student_epochs, "learning_rate": self.student_learning_rate,
                "patience": self.student_patience, "threshold_folds": 0, "weights_format": "fp16"}

    def _make_student(self) -> Any:
        return BertClassifier(**self.student_params(), device=self.device, progress=self.progress)

    def _get_teacher(self, texts: Sequence[str], labels: Sequence[Sequence[str]], groups, headings) -> Any:
        if self.teacher:
            from policyclf.models.base import load_model, read_meta

            path = getattr(self, "teacher_path_", self.teacher)
            if read_meta(path)["backend"] != "bert":
                raise ModelError(f"distill.teacher {path}: a {read_meta(path)['backend']} model; "
                                 "the teacher must be a bert model")
            log.info("distillation: teacher = the saved model %s", path)
            return load_model(path, device=self.device, inference_dtype="float32", progress=self.progress)
        from policyclf.models.base import load_model

        kept = self._teacher_cache(texts, labels, groups, headings)
        if kept is not None and (kept / "meta.json").is_file():
            log.info("distillation: the teacher trained on these passages is read from %s", kept)
            self.teacher_kept_ = str(kept)
            return load_model(kept, device=self.device, inference_dtype="float32", progress=self.progress)
        log.info("distillation: training the teacher on %d passages", len(texts))
        teacher = BertClassifier(**self.teacher_params(), device=self.device, progress=self.progress)
        teacher.fit(texts, labels, groups=groups, headings=headings)
        if kept is not None:  # another student recipe on the same split reuses it
            _save_teacher(teacher, kept)
            # score with the saved teacher, so that its scores do not depend on whether it was cached
            return load_model(kept, device=self.device, inference_dtype="float32", progress=self.progress)
        return teacher

    def _teacher_cache(self, texts, labels, groups, headings) -> Path | None:
        """Where a teacher trained inside ``fit`` is kept (``$POLICYCLF_CACHE/distill/teacher-model-KEY``).

        The key covers the teacher's settings and its training data (passages, headings, labels,
        groups), not the student's, so every student recipe on one split shares one teacher.
        ``POLICYCLF_DISTILL_CACHE=0`` turns it off.
        """
        return teacher_cache_path(self.teacher_params(), texts, labels, groups, headings)

    # ------------------------------------------------------------ training
    def fit(self, texts: Sequence[str], labels: Sequence[Sequence[str]],
            groups: Sequence[str] | None = None, headings: Sequence[str] | None = None) -> "DistilledClassifier":
        """Train (or load) the teacher, score the passages and their sentence crops, train the student."""
        from policyclf.scoring import score_texts

        texts = [str(t) for t in texts]
        heads = list(headings) if headings is not None else [""] * len(texts)
        if self.student_layers < 1:
            raise ModelError("distill.student_layers must be at least 1")
        started = time.time()
        crops = sentence_crops(texts, self.crops, self.seed) if self.crops else []
        inputs = texts + [c for _, c in crops]
        input_heads = heads + [heads[i] for i, _ in crops]
        cache = self._score_cache(inputs, input_heads, labels, groups)
        if cache is not None and cache.is_file():
            with np.load(cache) as saved:
                targets, teacher_info = saved["targets"], json.loads(str(saved["teacher_info"]))
            log.info("distillation: teacher scores read from %s", cache)
        else:
            teacher = self._get_teacher(texts, labels, groups, heads)
            validation = getattr(teacher, "validation_", None)
            if validation is None:  # a saved teacher: what it recorded when it was trained
                from policyclf.models.base import read_meta

                saved_at = getattr(self, "teacher_path_", self.teacher) or self._teacher_cache(texts, labels, groups, heads)
                validation = (read_meta(saved_at).get("validation") or {}) if saved_at else {}
            kept_at = getattr(self, "teacher_kept_", None)
            source = self.teacher or (f"kept from an earlier fit on the same data and settings (the report's bert "
                                      f"run or another student recipe): {kept_at}" if kept_at else "trained in this fit")
            teacher_info = {"source": source,
                            "validation": {k: v for k, v in (validation or {}).items()
                                           if k not in ("history", "comparison")}}
            log.info("distillation: teacher scores %d passages + %d sentence spans", len(texts), len(crops))
            targets = score_texts(teacher, inputs, batch_size=64, headings=input_heads, progress=self.progress,
                                  desc="teacher scores")
            del teacher
            if cache is not None:  # a fit killed during the student's training resumes from here
                cache.parent.mkdir(parents=True, exist_ok=True)
                tmp = cache.with_name(cache.stem + ".tmp.npz")
                np.savez(tmp, targets=targets, teacher_info=json.dumps(teacher_info))
                tmp.replace(cache)
        student = self._make_student()
        student._fit_core(inputs, [list(l) for l in labels], holdout=True, headings=input_heads,
                          targets=targets, n_gold=len(texts), sources=[i for i, _ in crops])
        self.student_ = student
        self.thresholds_ = student.thresholds_
        self.validation_ = {**student.validation_, "teacher": teacher_info, "inputs": len(inputs),
                            "sentence_spans": len(crops), "train_seconds": round(time.time() - started, 1),
                            "method": student.validation_["method"] + "; student trained on the teacher's scores"}
        return self

    def _score_cache(self, inputs: list[str], headings: list[str], labels, groups) -> Path | None:
        """Where the teacher's scores for exactly this fit are kept (``$POLICYCLF_CACHE/distill``).

        The key covers everything that shapes the scores: the teacher's settings or saved model,
        the inputs, their headings, the gold labels and the groups. ``POLICYCLF_DISTILL_CACHE=0`` turns it off.
        """
        import hashlib

        if not _cache_on():
            return None
        from policyclf.models.base_model import cache_dir

        h = hashlib.sha1()
        teacher = getattr(self, "teacher_path_", self.teacher)
        if teacher:
            meta = Path(teacher) / "meta.json"
            h.update(f"saved:{Path(teacher).resolve()}:{meta.read_bytes() if meta.is_file() else b''!r}".encode())
        else:
            h.update(json.dumps(self.teacher_params(), sort_keys=True, default=str).encode())
        _hash_data(h, inputs, headings, labels, groups)
        return cache_dir() / "distill" / f"teacher-scores-{h.hexdigest()[:20]}.npz"

    # ------------------------------------------------------------ inference and persistence
    def _require(self) -> Any:
        if not hasattr(self, "student_"):
            raise ModelError("the model is not fitted")
        return self.student_

    def predict_proba(self, texts: Sequence[str], headings: Sequence[str] | None = None) -> np.ndarray:
        return self._require().predict_proba(texts, headings)

    def runtime_info(self) -> dict[str, Any]:
        return {**self._require().runtime_info(), "encoder_layers": self.student_layers}

    @property
    def precision_(self) -> str:
        return self._require().precision_

    def _save_weights(self, directory: Path) -> None:
        self._require()._save_weights(directory)

    def _load_weights(self, directory: Path) -> None:
        student = self._make_student()
        student.thresholds_ = self.thresholds_
        student._load_weights(directory)
        self.student_ = student

