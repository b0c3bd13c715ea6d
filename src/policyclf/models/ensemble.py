"""An ensemble of backends: each member scores the passage, the decisions are pooled in logit space.

Every member keeps its own per-category thresholds, tuned inside its own training data. The ensemble
centres each member's score on its threshold in logit space, averages the centred logits with fixed
weights (equal by default) and returns the sigmoid of the mean, with a threshold of 0.5 for every
category:

    score = sigmoid( sum_m w_m * (logit(p_m) - logit(t_m)) / sum_m w_m )

A passage is coded with a category when the members' pooled evidence is past their thresholds. A
single member gives back its own decisions. Nothing of the combination is fitted, so no test data
can reach it: the only choices are the members and the weights, made in the config.

Saved as one model folder with the members as ordinary model folders under ``members/`` (each one
loads on its own with ``policyclf predict --model``). Because nothing is fitted on top of the
members, an ensemble can also be put together from saved models (:func:`assemble`), and the report
builds its predictions from the members' saved predictions (:func:`combine_prediction_rows`).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.errors import ModelError
from policyclf.labels import CATEGORIES
from policyclf.models.base import BaseClassifier

MEMBERS_DIR = "members"
_EPS = 1e-6


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.log(p) - np.log1p(-p)


def combine_scores(scores: Sequence[np.ndarray], thresholds: Sequence[np.ndarray],
                   weights: Sequence[float] | None = None) -> np.ndarray:
    """The ensemble's (n, 7) scores from its members' scores and thresholds (threshold 0.5 each).

    A member's thresholds are one (7,) row for all passages, or (n, 7), one row per passage.

    Raises:
        ModelError: no members, shapes that differ, or weights that are not positive.
    """
    if not scores:
        raise ModelError("an ensemble needs at least one member")
    w = np.ones(len(scores)) if not weights else np.asarray(weights, dtype=np.float64)
    if len(w) != len(scores) or (w <= 0).any():
        raise ModelError(f"ensemble weights {list(w)} do not fit {len(scores)} members (one positive weight each)")
    shapes = {np.shape(s) for s in scores}
    if len(shapes) != 1:
        raise ModelError(f"ensemble members scored different shapes {sorted(shapes)}")
    z = sum(wi * (_logit(s) - _logit(np.atleast_2d(t))) for wi, s, t in zip(w, scores, thresholds)) / w.sum()
    return 1.0 / (1.0 + np.exp(-z))


def combine_prediction_rows(members: Sequence[dict[str, dict[str, Any]]], weights: Sequence[float] | None = None,
                            ) -> dict[str, dict[str, Any]]:
    """Saved split predictions (passage_id → {scores, thresholds, ...}) of each member, combined.

    Only passages every member scored are kept; ``train_seconds`` is the members' sum.

    Raises:
        ModelError: the members scored different passages.
    """
    ids = list(members[0])
    if any(set(m) != set(ids) for m in members[1:]):
        raise ModelError("the ensemble's members scored different passages in this split; rerun the members")
    # (n, 7) thresholds: a member's saved thresholds are per row
    scores = [np.array([m[i]["scores"] for i in ids]) for m in members]
    thresholds = [np.array([m[i]["thresholds"] for i in ids]) for m in members]
    combined = combine_scores(scores, thresholds, weights)
    half = np.full(combined.shape[1], 0.5)
    return {i: {"scores": combined[k], "thresholds": half,
                "train_seconds": round(sum(m[i].get("train_seconds") or 0 for m in members), 1)}
            for k, i in enumerate(ids)}


class EnsembleClassifier(BaseClassifier):
    """Members of other backends, trained with the settings of one config, pooled by :func:`combine_scores`.

    Args:
        members: backend names (``bert``, ``distilled``, ``tfidf``); each trains with the config's
            sections for that backend.
        weights: one positive weight per member; empty = equal weights.
    """

    backend = "ensemble"
    CONFIG_KEYS = {"members": ("ensemble", "members"), "weights": ("ensemble", "weights")}
    RUNTIME_OPTIONS = ("device", "inference_dtype", "inference_batch_size", "inference_batch_tokens", "progress")

    def __init__(self, members: Sequence[str] = ("bert", "tfidf"), weights: Sequence[float] = (),
                 member_models: Sequence[BaseClassifier] | None = None, **runtime: Any) -> None:
        self.members = list(members)
        self.weights = list(weights)
        self.runtime = runtime
        if not self.members or "ensemble" in self.members:
            raise ModelError(f"ensemble members {self.members}: name one or more backends other than 'ensemble'")
        if self.weights and (len(self.weights) != len(self.members) or min(self.weights) <= 0):
            raise ModelError(f"ensemble weights {self.weights}: one positive weight per member {self.members}")
        self.member_models_ = list(member_models or [])
        self.thresholds_ = np.full(len(CATEGORIES), 0.5)

    # ------------------------------------------------------------ building
    @classmethod
    def from_config(cls, config: Any, **runtime: Any) -> "EnsembleClassifier":
        """The members built from ``config``, each with ``model.backend`` set to its own name."""
        from policyclf.models.registry import backend_class

        model = cls(config.ensemble.members, config.ensemble.weights, **runtime)
        model.config_ = config
        model.member_models_ = []
        for name in model.members:
            cls_ = backend_class(name)
            opts = {k: v for k, v in runtime.items() if k in cls_.RUNTIME_OPTIONS}
            model.member_models_.append(cls_.from_config(member_config(config, name), **opts))
        return model

    def params(self) -> dict[str, Any]:
        """The ensemble's own settings and each member's, as ``backend.argument``."""
        out: dict[str, Any] = {"members": self.members, "weights": self.weights}
        for name, m in zip(self.members, self.member_models_):
            out.update({f"{name}.{k}": v for k, v in m.params().items()})
        return out

    def to_config(self, base: Any = None) -> Any:
        config = base.model_copy(deep=True) if base is not None else None
        for m in self.member_models_:
            config = m.to_config(config)
        config = super().to_config(config)
        return config

    @property
    def use_heading(self) -> bool:  # type: ignore[override]
        return any(getattr(m, "use_heading", False) for m in self.member_models_)

    # ------------------------------------------------------------ training and inference
    def fit(self, texts: Sequence[str], labels: Sequence[Sequence[str]], groups: Sequence[str] | None = None,
            headings: Sequence[str] | None = None) -> "EnsembleClassifier":
        """Fit every member on the same passages (each tunes its own thresholds inside them)."""
        import logging

        log = logging.getLogger("policyclf")
        for name, m in zip(self.members, self.member_models_):
            log.info("ensemble: fitting member %s", name)
            m.fit(texts, labels, groups=groups, headings=headings)
        self.validation_ = {name: getattr(m, "validation_", None) for name, m in zip(self.members, self.member_models_)}
        self.thresholds_ = np.full(len(CATEGORIES), 0.5)
        return self

    def _require(self) -> list[BaseClassifier]:
        if len(self.member_models_) != len(self.members) or not all(hasattr(m, "thresholds_")
                                                                      for m in self.member_models_):
            raise ModelError("the ensemble is not fitted")
        return self.member_models_

    def predict_proba(self, texts: Sequence[str], headings: Sequence[str] | None = None) -> np.ndarray:
        members = self._require()
        return combine_scores([m.predict_proba(texts, headings) for m in members],
                              [m.thresholds_ for m in members], self.weights)

    def runtime_info(self) -> dict[str, Any]:
        """Device and precision of the encoder members (TF-IDF computes in float64 on the CPU), and each member's."""
        infos = {f"{i}-{name}": m.runtime_info() for i, (name, m) in enumerate(zip(self.members, self._require()))}
        neural = [v for v in infos.values() if v.get("precision") != "float64"] or list(infos.values())
        return {"device": "+".join(dict.fromkeys(v["device"] for v in infos.values())),
                "precision": neural[0]["precision"], "members": infos}

    # ------------------------------------------------------------ persistence
    def _save_weights(self, directory: Path) -> None:
        config = getattr(self, "config_", None)
        for i, (name, m) in enumerate(zip(self.members, self._require())):
            m.save(directory / MEMBERS_DIR / f"{i}-{name}", extra_meta={"validation": getattr(m, "validation_", None)},
                   config=member_config(config, name) if config is not None else None)

    def _load_weights(self, directory: Path) -> None:
        from policyclf.models.base import load_model

        loaded = []
        for i, name in enumerate(self.members):
            sub = directory / MEMBERS_DIR / f"{i}-{name}"
            if not sub.is_dir():
                raise ModelError(f"{sub}: the ensemble's member {name!r} is missing; the model directory is incomplete")
            m = load_model(sub, **self.runtime)
            if m.backend != name:
                raise ModelError(f"{sub}: a {m.backend!r} model where the ensemble expects {name!r}")
            loaded.append(m)
        self.member_models_ = loaded


def member_config(config: Any, name: str) -> Any:
    """``config`` with ``model.backend`` set to the member's backend."""
    cfg = copy.deepcopy(config)
    cfg.model.backend = name
    return cfg


def assemble(member_dirs: Sequence[str | Path], output: str | Path, weights: Sequence[float] = (),
             force: bool = False) -> Path:
    """An ensemble model folder put together from saved models trained on the same passages.

    Members are copied as they are (their files byte for byte). The ensemble records the members'
    shared training data; members trained on different passages are refused.

    Raises:
        ModelError: fewer than two members, an ensemble as a member, or members trained on different data.
    """
    import json
    import shutil

    from policyclf.models.base import CONFIG_FILE, META_FILE, read_meta, read_model_config
    from policyclf.training import prepare_output_dir, write_dir_atomic

    if len(member_dirs) < 2:
        raise ModelError("an ensemble needs two or more member models")
    metas = [read_meta(d) for d in member_dirs]
    names = [m["backend"] for m in metas]
    if "ensemble" in names:
        raise ModelError("an ensemble cannot be a member of another ensemble")
    prints = {m.get("training_data", {}).get("fingerprint") for m in metas}
    if len(prints) != 1 or None in prints:
        raise ModelError("the members were trained on different passages (training-data fingerprints "
                         f"{sorted(map(str, prints))}); an ensemble pools models of one training set")
    output = prepare_output_dir(output, force)
    config = read_model_config(member_dirs[0])
    for d in member_dirs[1:]:
        config = _merge_member_config(config, read_model_config(d), read_meta(d)["backend"])
    config.ensemble.members = names
    config.ensemble.weights = list(weights)
    EnsembleClassifier(names, weights)  # validates members and weights

    def fill(tmp: Path) -> None:
        from policyclf.config import dump_config
        from policyclf.models.base import package_versions

        for i, (name, d) in enumerate(zip(names, member_dirs)):
            shutil.copytree(d, tmp / MEMBERS_DIR / f"{i}-{name}")
        config.model.backend = "ensemble"
        config.training.device = "auto"
        dump_config(config, tmp / CONFIG_FILE)
        meta = {"policyclf_model": 1, "backend": "ensemble", "labels": metas[0]["labels"],
                "thresholds": [0.5] * len(metas[0]["labels"]), "versions": package_versions(),
                "training_data": metas[0].get("training_data"),
                "validation": {name: m.get("validation") for name, m in zip(names, metas)},
                "assembled_from": [str(d) for d in member_dirs]}
        (tmp / META_FILE).write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")

    return write_dir_atomic(output, fill)


_BACKEND_SECTIONS = {"tfidf": ("baseline",), "bert": ("model", "training"), "distilled": ("model", "training", "distill")}


def _merge_member_config(config: Any, other: Any, backend: str) -> Any:
    """``config`` with the sections that shape ``backend`` taken from ``other`` (that member's saved config).

    Raises:
        ModelError: two BERT-type members whose [model] or [training] settings differ (one config cannot
            hold both).
    """
    out = config.model_copy(deep=True)
    for sec in _BACKEND_SECTIONS.get(backend, ()):
        if sec in ("model", "training") and out.model.backend in ("bert", "distilled"):
            mine = getattr(out, sec).model_dump(exclude={"backend", "device"})
            theirs = getattr(other, sec).model_dump(exclude={"backend", "device"})
            if mine != theirs:
                raise ModelError(f"two members with different [{sec}] settings cannot share one ensemble config")
        setattr(out, sec, getattr(other, sec).model_copy(deep=True))
    return out
