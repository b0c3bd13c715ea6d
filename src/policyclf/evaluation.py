"""Evaluation numbers: a model on annotated passages, and every number of a report from saved predictions."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.corpus import REGIONS, annotations_dir, load_examples, load_passages, training_fingerprint
from policyclf.errors import DataError
from policyclf.labels import CATEGORIES, labels_to_matrix
from policyclf.metrics import macro_f1, multilabel_report, paired_bootstrap, subset_report
from policyclf.models.base import load_model, read_meta
from policyclf.protocol import prediction_path, read_predictions, unseen_examples
from policyclf.scoring import score_texts
from policyclf.training import training_examples

# paired comparisons a report makes where both backends ran (macro-F1 of a − b, passage and document bootstrap)
COMPARED_PAIRS = (("bert", "tfidf"), ("distilled", "bert"), ("ensemble", "bert"), ("ensemble", "tfidf"))
BACKEND_NAMES = {"bert": "BERT", "tfidf": "TF-IDF", "distilled": "student", "ensemble": "ensemble"}


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
    scores = score_texts(model, [e.text for e in examples], progress=True,
                         headings=[e.passage.heading for e in examples])
    result = multilabel_report(labels_to_matrix([e.labels for e in examples]), scores >= model.thresholds_)
    result = {"model": str(model_dir), "backend": meta["backend"], "annotations": [str(f) for f in files],
              "regions": sorted({e.passage.region for e in examples}), **result}
    trained_on = {Path(a).name for a in meta.get("training_data", {}).get("annotations", [])}
    if trained_on & {f.name for f in files}:
        result["warning"] = ("some of these passages were in the model's training data; "
                             "the scores are optimistic (use `policyclf report` for held-out numbers)")
    return result


def gold_and_scores(examples, preds):

    keep = [e for e in examples if e.passage_id in preds]
    y = labels_to_matrix([e.labels for e in keep])
    s = np.array([preds[e.passage_id]["scores"] for e in keep])
    t = np.array([preds[e.passage_id]["thresholds"] for e in keep])
    return keep, y, s, s >= t


def with_intervals(y, pred, n_boot: int, groups=None, seed: int = 0) -> dict[str, Any]:
    from policyclf.metrics import bootstrap_ci, macro_f1, micro_f1, per_category, sample_f1

    rep = multilabel_report(y, pred)
    rep["ci_passages"] = {name: bootstrap_ci(fn, y, pred, n_boot=n_boot, seed=seed)
                          for name, fn in (("macro_f1", macro_f1), ("micro_f1", micro_f1), ("sample_f1", sample_f1))}
    if groups is not None:
        rep["ci_documents"] = {name: bootstrap_ci(fn, y, pred, n_boot=n_boot, seed=seed, groups=groups)
                               for name, fn in (("macro_f1", macro_f1), ("micro_f1", micro_f1))}
    for j, cat in enumerate(rep["per_category"]):
        def f1_j(t, p, j=j, cat=cat):
            return per_category(t[:, [j]], p[:, [j]], [cat])[cat]["f1"]

        rep["per_category"][cat]["f1_ci"] = bootstrap_ci(f1_j, y, pred, n_boot=n_boot, seed=seed)
    return rep


def calibration(y, scores, bins: int = 10) -> dict[str, Any]:
    """Reliability table over all (passage, category) scores and the expected calibration error."""

    s, t = scores.ravel(), y.ravel()
    edges = np.linspace(0, 1, bins + 1)
    rows, ece = [], 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (s >= lo) & ((s < hi) if hi < 1 else (s <= hi))
        if m.any():
            conf, acc = float(s[m].mean()), float(t[m].mean())
            ece += m.mean() * abs(conf - acc)
            rows.append({"lo": float(lo), "hi": float(hi), "n": int(m.sum()), "mean_score": conf, "positive_rate": acc})
    return {"ece": float(ece), "bins": rows}


def pr_curves(y, scores) -> dict[str, Any]:
    """Per-category precision–recall curves and average precision."""
    from sklearn.metrics import average_precision_score, precision_recall_curve


    out = {}
    for j, cat in enumerate(CATEGORIES):
        if y[:, j].sum() == 0:
            out[cat] = {"average_precision": None}
            continue
        p, r, _ = precision_recall_curve(y[:, j], scores[:, j])
        step = max(1, len(p) // 200)
        out[cat] = {"average_precision": float(average_precision_score(y[:, j], scores[:, j])),
                    "precision": np.round(p[::step], 4).tolist(), "recall": np.round(r[::step], 4).tolist()}
    return out


def cooccurrence(y) -> list[list[int]]:
    """Category × category counts of passages carrying both labels (diagonal: one label)."""
    y = y.astype(int)
    return (y.T @ y).tolist()


def worst_errors(examples, y, scores, thresholds, k: int = 25) -> list[dict[str, Any]]:
    """The confidently wrong decisions: passage id, category, gold, score (no text)."""


    margin = np.where(y == 1, thresholds - scores, scores - thresholds)
    order = np.argsort(-margin, axis=None)[:k]
    out = []
    for flat in order:
        i, j = np.unravel_index(flat, y.shape)
        if margin[i, j] <= 0:
            break
        out.append({"passage_id": examples[i].passage_id, "region": examples[i].passage.region,
                    "category": CATEGORIES[j], "gold": int(y[i, j]), "score": round(float(scores[i, j]), 4),
                    "threshold": round(float(thresholds[i, j]), 4),
                    "error": "false negative" if y[i, j] else "false positive"})
    return out


def compute_report(config: Any, out: str | Path, corpus: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Every number of the report, from the predictions saved under ``out``.

    Returns:
        the report (JSON-able numbers) and the pooled gold/score matrices per backend (for figures).
    """


    out = Path(out)
    n_boot = config.report.bootstrap
    trained = training_examples(config, corpus)
    six = [e for e in trained if e.passage.pool == "six_regions"]
    unseen = unseen_examples(config, corpus)
    report: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"six_regions_passages": len(six), "unseen_passages": len(unseen),
                 "trained_pools": dict(Counter(e.passage.pool for e in trained)),
                 "annotations_fingerprint": training_fingerprint(six)},
        "protocol": {"loro": "train on five regions (thresholds tuned inside them), test on the sixth; "
                             "pooled over the six held-out regions",
                     "unseen": "train on all six regions, test on the unseen-province set",
                     "bootstrap": n_boot},
        "backends": {}, "comparison": {},
    }
    pooled: dict[str, dict[str, Any]] = {}
    for backend in config.report.backends:
        loro_preds: dict[str, Any] = {}
        for r in REGIONS:
            p = prediction_path(out, backend, f"loro-{r}")
            if p.is_file():
                loro_preds.update(read_predictions(p))
        if not loro_preds:
            continue
        ex, y, s, pred = gold_and_scores(six, loro_preds)
        docs = [e.passage.doc_id for e in ex]
        thr = np.array([loro_preds[e.passage_id]["thresholds"] for e in ex])
        b: dict[str, Any] = {"loro": with_intervals(y, pred, n_boot, groups=docs)}
        b["loro"]["per_region"] = {r: multilabel_report(y[m], pred[m]) for r in REGIONS
                                   if (m := np.array([e.passage.region == r for e in ex])).any()}
        # regions with test passages but no saved fold yet (a run still going, or one restricted to some regions)
        b["loro"]["missing_regions"] = [r for r in REGIONS if r not in b["loro"]["per_region"]
                                        and any(e.passage.region == r for e in six)]
        b["loro"]["per_doc_type"] = {t: subset_report(y[m], pred[m]) for t in ("regulation", "work_report")
                                     if (m := np.array([e.passage.doc_type == t for e in ex])).any()}
        b["loro"]["train_seconds"] = sum(v.get("train_seconds", 0) for v in
                                         {v["split"]: v for v in loro_preds.values()}.values())
        b["calibration"] = calibration(y, s)
        b["pr_curves"] = pr_curves(y, s)
        b["cooccurrence_predicted"] = cooccurrence(pred)
        b["worst_errors"] = worst_errors(ex, y, s, thr)
        pooled[backend] = {"examples": ex, "y": y, "scores": s, "pred": pred, "docs": docs}
        up = prediction_path(out, backend, "unseen")
        if up.is_file() and unseen:
            uprd = read_predictions(up)
            uex, uy, us, upred = gold_and_scores(unseen, uprd)
            b["unseen"] = with_intervals(uy, upred, n_boot, groups=[e.passage.doc_id for e in uex])
            b["unseen"]["per_province"] = {r: multilabel_report(uy[m], upred[m])
                                           for r in sorted({e.passage.region for e in uex})
                                           if (m := np.array([e.passage.region == r for e in uex])).any()}
            pooled[backend]["unseen"] = (uex, uy, upred)
        report["backends"][backend] = b
    for a_name, b_name in COMPARED_PAIRS:
        if a_name not in pooled or b_name not in pooled:
            continue
        a, t = pooled[a_name], pooled[b_name]
        same = [e.passage_id for e in a["examples"]] == [e.passage_id for e in t["examples"]]
        if same:
            report["comparison"][f"loro_macro_f1_{a_name}_minus_{b_name}"] = {
                "passages": paired_bootstrap(macro_f1, a["y"], a["pred"], t["pred"], n_boot=n_boot),
                "documents": paired_bootstrap(macro_f1, a["y"], a["pred"], t["pred"], n_boot=n_boot, groups=a["docs"])}
        if "unseen" in a and "unseen" in t and [e.passage_id for e in a["unseen"][0]] == [e.passage_id for e in t["unseen"][0]]:
            (uex, uy, ua), (_, _, ut) = a["unseen"], t["unseen"]
            report["comparison"][f"unseen_macro_f1_{a_name}_minus_{b_name}"] = {
                "passages": paired_bootstrap(macro_f1, uy, ua, ut, n_boot=n_boot),
                "documents": paired_bootstrap(macro_f1, uy, ua, ut, n_boot=n_boot,
                                              groups=[e.passage.doc_id for e in uex])}
    if pooled:
        any_b = next(iter(pooled.values()))
        report["cooccurrence_gold"] = cooccurrence(any_b["y"])
    agreement_path = config.resolve(config.report.agreement)
    if agreement_path.is_file():
        agr = json.loads(agreement_path.read_text(encoding="utf-8"))
        report["human_ceiling"] = {
            "source": str(config.report.agreement),
            "passages": agr["overall"]["passages"],
            "macro_f1": agr["overall"]["human_ceiling_macro_f1"],
            "per_category": {c: agr["per_category"][c]["human_ceiling_f1"] for c in CATEGORIES},
            "masi_alpha": agr["overall"]["masi_alpha"],
        }
    report["headline"] = headline_rows(report)
    return report, pooled


def headline_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the short results table README shows."""
    rows = []
    for backend, b in report["backends"].items():
        for split in ("loro", "unseen"):
            if split not in b:
                continue
            r = b[split]
            ci = r["ci_passages"]["macro_f1"]
            test = "unseen provinces"
            if split == "loro":
                test = "leave-one-region-out"
                if r.get("missing_regions"):
                    test += f" ({', '.join(r['per_region'])} only; not yet: {', '.join(r['missing_regions'])})"
            rows.append({"backend": backend, "test": test,
                         "n": r["n"], "macro_f1": r["macro_f1"], "macro_f1_lo": ci["lo"], "macro_f1_hi": ci["hi"],
                         "micro_f1": r["micro_f1"], "sample_f1": r["sample_f1"]})
    if "human_ceiling" in report:
        rows.append({"backend": "human coders (vs adjudicated)", "test": "double-coded six-region passages",
                     "n": report["human_ceiling"]["passages"], "macro_f1": report["human_ceiling"]["macro_f1"]})
    return rows


