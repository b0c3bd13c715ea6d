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

import numpy as np

from policyclf.corpus import REGIONS, Example, load_examples, load_passages, training_fingerprint
from policyclf.labels import CATEGORIES, labels_to_matrix
from policyclf.metrics import MIN_SUBSET_SUPPORT, macro_f1, micro_f1, paired_bootstrap, per_category
from policyclf.scoring import score_texts
from policyclf.training import build_model, fit_examples, save_model_atomic, save_predictions, training_examples

# settings that only say where and how fast a model computes: they never make two models differ
_RUNTIME_ONLY = {"device", "num_threads", "inference_batch_size", "inference_batch_tokens", "progress"}


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


def reusable_model(directory: str | Path, config: Any, examples: list[Example]) -> str | None:
    """Why the saved model in ``directory`` is not the one ``config`` would train on ``examples``.

    ``None`` means it is that model: the same backend, every setting that shapes the model equal
    (run-time settings such as the device aside) and the same training-data fingerprint, so the
    protocol may score with it instead of training it again.
    """
    from policyclf.models.base import read_meta, read_model_config
    from policyclf.models.registry import backend_class

    meta = read_meta(directory)
    if meta["backend"] != config.model.backend:
        return f"a {meta['backend']} model, not {config.model.backend}"
    cls = backend_class(config.model.backend)
    want = {k: v for k, v in cls.from_config(config).params().items() if k not in _RUNTIME_ONLY}
    have = {k: v for k, v in cls.from_config(read_model_config(directory)).params().items() if k not in _RUNTIME_ONLY}
    differ = sorted(k for k in want if want[k] != have.get(k))
    if differ:
        return "settings differ: " + ", ".join(f"{k} {have.get(k)!r} vs {want[k]!r}" for k in differ)
    if meta.get("training_data", {}).get("fingerprint") != training_fingerprint(examples):
        return "trained on other passages (training-data fingerprint differs)"
    return None


def adopt_teacher(directory: str | Path, config: Any, examples: list[Example]) -> Path | None:
    """Keep the saved ``bert`` model in ``directory`` where a distilled fit on ``examples`` looks for its teacher.

    Only a model that :func:`reusable_model` finds identical to the teacher ``config`` would train on
    ``examples`` (same settings, same training-data fingerprint) is adopted, so no held-out passage
    can reach a student through it. Returns the cache path, or None where the model is not that
    teacher (or the distillation cache is off).
    """
    from policyclf.models.base import load_model, read_meta
    from policyclf.models.distilled import share_as_teacher

    if read_meta(directory)["backend"] != "bert" or config.distill.teacher:
        return None
    as_bert = copy.deepcopy(config)
    as_bert.model.backend = "bert"
    if reusable_model(directory, as_bert, examples) is not None:
        return None
    model = load_model(directory, device="cpu", progress=False)
    model.validation_ = read_meta(directory).get("validation")
    return share_as_teacher(model, [e.text for e in examples], [list(e.labels) for e in examples],
                            [e.passage.doc_id for e in examples], [e.passage.heading for e in examples])


def protocol_splits(config: Any, all_train: list[Example], unseen: list[Example]
                    ) -> list[tuple[str, list[Example], list[Example]]]:
    """(name, training set, test set) of every split the report needs.

    A leave-one-region-out fold trains on every passage outside the held-out region, so passages
    of other pools (the v3 ``extension_pool``: other provinces and national texts) are trained on
    in every fold, and tests on the held-out region's ``six_regions`` passages only. The unseen
    split trains on everything and tests on the unseen-province set.
    """
    splits = [(f"loro-{r}", [e for e in all_train if e.passage.region != r],
               [e for e in all_train if e.passage.region == r and e.passage.pool == TEST_POOL])
              for r in (config.report.loro_regions or REGIONS)]
    if config.report.unseen:
        splits.append(("unseen", all_train, unseen))
    return splits


def run_protocol(config: Any, out: str | Path, *, corpus: str | None = None,
                 save_models: str | Path | None = None, reuse_models: list[str | Path] | tuple = (),
                 log: Any = print) -> Path:
    """Train and score every split the report needs, saving per-passage predictions.

    Splits: leave-one-region-out over the six regions (thresholds tuned inside the training
    regions), and all six regions → the unseen-province test set. Both backends get identical
    splits and seeds. A split whose predictions file exists is skipped, so an interrupted run
    resumes and a report can be rebuilt without retraining.

    ``reuse_models``: saved models that may stand in for the all-six-region training run of
    the unseen-province split — only one that :func:`reusable_model` finds identical (same
    settings, same training-data fingerprint) is used; any other is refused with the reason. A
    saved ``bert`` model identical to the teacher a ``distilled`` split would train (the shipped
    teacher, for the unseen split) is adopted as that split's teacher (:func:`adopt_teacher`).
    """
    out = Path(out)
    all_train = training_examples(config, corpus)
    unseen = unseen_examples(config, corpus)
    for backend in config.report.backends:
        cfg = copy.deepcopy(config)
        cfg.model.backend = backend
        if backend == "ensemble":
            _combine_ensemble(cfg, out, protocol_splits(config, all_train, unseen), save_models, log)
            continue
        for name, train_set, test_set in protocol_splits(config, all_train, unseen):
            path = prediction_path(out, backend, name)
            model_target = Path(save_models) / backend if save_models and name == "unseen" else None
            need_model = model_target is not None and not (model_target / "meta.json").is_file()
            if not test_set or (path.is_file() and not need_model):
                continue
            started = time.time()
            model, extra = None, {}
            if name == "unseen" and not need_model:
                for d in reuse_models:
                    why = reusable_model(d, cfg, train_set)
                    if why is None:
                        from policyclf.models.base import load_model, read_meta

                        log(f"[{backend}] {name}: scoring {len(test_set)} with the saved model {d} "
                            "(same settings and training data as this split)")
                        model = load_model(d)
                        validation = read_meta(d).get("validation") or {}
                        extra = {"reused_model": str(d), "train_seconds": validation.get("train_seconds")}
                        break
                    log(f"[{backend}] {name}: not reusing {d}: {why}")
            if model is None and backend == "distilled":
                for d in reuse_models:  # a saved bert model of exactly this split is the student's teacher
                    kept = adopt_teacher(d, cfg, train_set)
                    if kept is not None:
                        log(f"[{backend}] {name}: the saved bert model {d} (same settings and training data) "
                            f"is this split's teacher")
                        break
            if model is None:
                log(f"[{backend}] {name}: training on {len(train_set)} passages, scoring {len(test_set)}")
                model = fit_examples(build_model(cfg), train_set)
                extra = {"train_seconds": round(time.time() - started, 1)}
                if backend == "bert":  # a student of the same split (backend distilled) reuses it as its teacher
                    from policyclf.models.distilled import share_as_teacher

                    share_as_teacher(model, [e.text for e in train_set], [list(e.labels) for e in train_set],
                                     [e.passage.doc_id for e in train_set], [e.passage.heading for e in train_set])
            if model_target is not None:
                save_model_atomic(model, model_target, cfg, train_set)
            if not path.is_file():
                scores = score_texts(model, [e.text for e in test_set], batch_size=64,
                                     headings=[e.passage.heading for e in test_set])
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                save_predictions(tmp, test_set, scores, model.thresholds_, split=name, **extra)
                tmp.replace(path)
            log(f"[{backend}] {name}: done in {time.time() - started:.0f}s")
    return out


def compare_prediction_sets(a_dir: Path, b_dir: Path, examples: list[Example], *, n_boot: int = 1000) -> dict[str, Any]:
    """Two saved prediction sets (``split.jsonl`` files of passage scores and thresholds) on the splits
    both have: per split and pooled, macro-F1 of each, the paired document bootstrap of a − b and
    the share of decisions (passage × category) on which they agree.

    Only passages present in both files of a split and in ``examples`` (their gold labels) count.
    """
    gold = {e.passage_id: e for e in examples}
    splits = sorted(p.stem for p in Path(a_dir).glob("*.jsonl") if (Path(b_dir) / p.name).is_file())
    rows: list[dict[str, Any]] = []
    pooled: dict[str, list] = {"y": [], "a": [], "b": [], "docs": [], "types": []}
    for split in splits:
        ra = read_predictions(Path(a_dir) / f"{split}.jsonl")
        rb = read_predictions(Path(b_dir) / f"{split}.jsonl")
        ids = sorted(set(ra) & set(rb) & set(gold))
        if not ids:
            continue
        y = labels_to_matrix([gold[i].labels for i in ids]).astype(bool)
        pa = np.array([np.asarray(ra[i]["scores"]) >= np.asarray(ra[i]["thresholds"]) for i in ids])
        pb = np.array([np.asarray(rb[i]["scores"]) >= np.asarray(rb[i]["thresholds"]) for i in ids])
        docs = [gold[i].passage.doc_id for i in ids]
        rows.append(_paired_row(split, y, pa, pb, docs, n_boot))
        for k, v in (("y", y), ("a", pa), ("b", pb), ("docs", docs), ("types", [gold[i].passage.doc_type for i in ids])):
            pooled[k].append(v)
    out: dict[str, Any] = {"a": str(a_dir), "b": str(b_dir), "splits": rows}
    if rows:
        y, pa, pb = np.vstack(pooled["y"]), np.vstack(pooled["a"]), np.vstack(pooled["b"])
        docs = [d for part in pooled["docs"] for d in part]
        out["pooled"] = _paired_row("pooled", y, pa, pb, docs, n_boot)
        out["pooled"]["per_doc_type"] = _genre_rows(y, pa, pb, docs, [t for part in pooled["types"] for t in part],
                                                    n_boot)
    return out


def _paired_row(name: str, y: np.ndarray, pa: np.ndarray, pb: np.ndarray, docs: list[str], n_boot: int) -> dict[str, Any]:
    d = paired_bootstrap(macro_f1, y, pa, pb, n_boot=n_boot, groups=docs)
    fa, fb = per_category(y, pa), per_category(y, pb)
    return {"split": name, "passages": int(len(y)), "a_macro_f1": round(macro_f1(y, pa), 4),
            "b_macro_f1": round(macro_f1(y, pb), 4), "diff": round(d["diff"], 4),
            "ci": [round(d["lo"], 4), round(d["hi"], 4)], "p_value": round(d["p_value"], 4),
            "decision_agreement": round(float((pa == pb).mean()), 4),
            "per_category": {c: {"support": fa[c]["support"], "a_f1": fa[c]["f1"], "b_f1": fb[c]["f1"]}
                             for c in CATEGORIES}}


def _genre_rows(y: np.ndarray, pa: np.ndarray, pb: np.ndarray, docs: list[str], doc_types: list[str],
                n_boot: int, min_support: int = MIN_SUBSET_SUPPORT) -> dict[str, Any]:
    """Per document type: macro-F1 over the categories with ≥ ``min_support`` positives there (named),
    micro-F1, and the paired document bootstrap of the supported macro-F1 difference."""
    out = {}
    types = np.asarray(doc_types)
    for t in sorted(set(doc_types)):
        m = types == t
        support = y[m].sum(0)
        keep = np.flatnonzero(support >= min_support)
        row: dict[str, Any] = {"passages": int(m.sum()), "supported_categories": [CATEGORIES[j] for j in keep],
                               "a_micro_f1": round(micro_f1(y[m], pa[m]), 4), "b_micro_f1": round(micro_f1(y[m], pb[m]), 4)}
        if len(keep):
            d = paired_bootstrap(macro_f1, y[m][:, keep], pa[m][:, keep], pb[m][:, keep], n_boot=n_boot,
                                 groups=[docs[i] for i in np.flatnonzero(m)])
            row.update({"a_macro_f1_supported": round(macro_f1(y[m][:, keep], pa[m][:, keep]), 4),
                        "b_macro_f1_supported": round(macro_f1(y[m][:, keep], pb[m][:, keep]), 4),
                        "diff": round(d["diff"], 4), "ci": [round(d["lo"], 4), round(d["hi"], 4)],
                        "p_value": round(d["p_value"], 4)})
        out[t] = row
    return out


def _combine_ensemble(config: Any, out: Path, splits: list[tuple[str, list[Example], list[Example]]],
                      save_models: str | Path | None, log: Any) -> None:
    """The ensemble backend of a report, from its members' saved predictions of the same splits.

    An ensemble fits nothing on top of its members (:mod:`policyclf.models.ensemble`), and each member
    trained in a split is the model the ensemble would train there (same settings, data and seed), so
    combining the members' saved scores gives the ensemble's scores without training anything again.
    The unseen split's model (``--save-models``) is put together from the members' saved models.

    Raises:
        ConfigError: a member's predictions of a split are missing (run that backend first).
    """
    from policyclf.errors import ConfigError
    from policyclf.models.ensemble import assemble, combine_prediction_rows

    members, weights = config.ensemble.members, config.ensemble.weights
    for name, train_set, test_set in splits:
        path = prediction_path(out, "ensemble", name)
        if not test_set:
            continue
        if not path.is_file():
            missing = [m for m in members if not prediction_path(out, m, name).is_file()]
            if missing:
                raise ConfigError(f"ensemble, split {name}: no predictions of member(s) {', '.join(missing)} in "
                                  f"{out / 'predictions'}; list them before 'ensemble' in report.backends")
            rows = combine_prediction_rows([read_predictions(prediction_path(out, m, name)) for m in members], weights)
            gold = {e.passage_id: e for e in test_set}
            kept = [i for i in rows if i in gold]
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_predictions(tmp, [gold[i] for i in kept], np.array([rows[i]["scores"] for i in kept]),
                             np.full(len(CATEGORIES), 0.5), split=name,
                             train_seconds=rows[kept[0]]["train_seconds"] if kept else 0.0,
                             members=list(members))
            tmp.replace(path)
            log(f"[ensemble] {name}: combined {len(kept)} passages from {', '.join(members)}")
        target = Path(save_models) / "ensemble" if save_models and name == "unseen" else None
        if target is not None and not (target / "meta.json").is_file():
            dirs = [Path(save_models) / m for m in members]
            if all((d / "meta.json").is_file() for d in dirs):
                assemble(dirs, target, weights, force=True)
                log(f"[ensemble] unseen: model put together from {', '.join(map(str, dirs))} in {target}")
            else:
                log(f"[ensemble] unseen: no ensemble model saved (a member model is missing under {save_models})")
