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


# ------------------------------------------------------------------ protocol (training runs)

def _pred_path(out: Path, backend: str, name: str) -> Path:
    return out / "predictions" / backend / f"{name}.jsonl"


def read_predictions(path: Path) -> dict[str, dict[str, Any]]:
    """Saved per-passage scores: passage_id → {scores, thresholds, ...}."""
    import json

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
    import copy
    import time

    from policyclf.corpus import REGIONS
    from policyclf.training import build_model, fit_examples, resolve_path, save_predictions, training_examples

    out = Path(out)
    passages = load_passages(corpus or config.data.corpus)
    all_train = training_examples(config, corpus)
    test_file = resolve_path(config.report.test_annotations)
    unseen = load_examples([test_file], passages) if test_file.is_file() else []
    for backend in config.report.backends:
        cfg = copy.deepcopy(config)
        cfg.model.backend = backend
        splits = [(f"loro-{r}", [e for e in all_train if e.passage.region != r],
                   [e for e in all_train if e.passage.region == r]) for r in REGIONS]
        splits.append(("unseen", all_train, unseen))
        for name, train_set, test_set in splits:
            path = _pred_path(out, backend, name)
            if path.is_file() or not test_set:
                continue
            started = time.time()
            log(f"[{backend}] {name}: training on {len(train_set)} passages, scoring {len(test_set)}")
            model = fit_examples(build_model(cfg), train_set)
            from policyclf.predict import Item, score_items

            scores = score_items(model, [Item(e.passage_id, e.text, e.passage.seq) for e in test_set],
                                 batch_size=64, progress=False)
            if name == "unseen" and save_models:
                from policyclf.config import dump_config
                from policyclf.corpus import training_fingerprint
                from policyclf.training import label_counts

                target = Path(save_models) / backend
                model.save(target, extra_meta={
                    "training_data": {"fingerprint": training_fingerprint(train_set),
                                      "annotations": list(cfg.data.annotations), **label_counts(train_set)},
                    "validation": getattr(model, "validation_", None)})
                dump_config(cfg, target / "config.toml")
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_predictions(tmp, test_set, scores, model.thresholds_, split=name,
                             train_seconds=round(time.time() - started, 1))
            tmp.replace(path)
            log(f"[{backend}] {name}: done in {time.time() - started:.0f}s")
    return out


# ------------------------------------------------------------------ report building

def _gold_and_scores(examples, preds):
    import numpy as np

    keep = [e for e in examples if e.passage_id in preds]
    y = labels_to_matrix([e.labels for e in keep])
    s = np.array([preds[e.passage_id]["scores"] for e in keep])
    t = np.array([preds[e.passage_id]["thresholds"] for e in keep])
    return keep, y, s, s >= t


def _with_intervals(y, pred, n_boot: int, groups=None, seed: int = 0) -> dict[str, Any]:
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
    import numpy as np

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
    import numpy as np
    from sklearn.metrics import average_precision_score, precision_recall_curve

    from policyclf.labels import CATEGORIES

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
    import numpy as np

    from policyclf.labels import CATEGORIES

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


def build_report(config: Any, out: str | Path, corpus: str | None = None) -> dict[str, Any]:
    """Compute every number of the report from saved predictions; write report.json and report.html."""
    import json
    from datetime import datetime, timezone

    import numpy as np

    from policyclf.corpus import REGIONS, training_fingerprint
    from policyclf.labels import CATEGORIES
    from policyclf.metrics import macro_f1, paired_bootstrap
    from policyclf.training import resolve_path, training_examples

    out = Path(out)
    n_boot = config.report.bootstrap
    passages = load_passages(corpus or config.data.corpus)
    six = training_examples(config, corpus)
    test_file = resolve_path(config.report.test_annotations)
    unseen = load_examples([test_file], passages) if test_file.is_file() else []
    report: dict[str, Any] = {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"six_regions_passages": len(six), "unseen_passages": len(unseen),
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
            p = _pred_path(out, backend, f"loro-{r}")
            if p.is_file():
                loro_preds.update(read_predictions(p))
        if not loro_preds:
            continue
        ex, y, s, pred = _gold_and_scores(six, loro_preds)
        docs = [e.passage.doc_id for e in ex]
        thr = np.array([loro_preds[e.passage_id]["thresholds"] for e in ex])
        b: dict[str, Any] = {"loro": _with_intervals(y, pred, n_boot, groups=docs)}
        b["loro"]["per_region"] = {r: multilabel_report(y[m], pred[m]) for r in REGIONS
                                   if (m := np.array([e.passage.region == r for e in ex])).any()}
        b["loro"]["per_doc_type"] = {t: multilabel_report(y[m], pred[m]) for t in ("regulation", "work_report")
                                     if (m := np.array([e.passage.doc_type == t for e in ex])).any()}
        b["loro"]["train_seconds"] = sum(v.get("train_seconds", 0) for v in
                                         {v["split"]: v for v in loro_preds.values()}.values())
        b["calibration"] = calibration(y, s)
        b["pr_curves"] = pr_curves(y, s)
        b["cooccurrence_predicted"] = cooccurrence(pred)
        b["worst_errors"] = worst_errors(ex, y, s, thr)
        pooled[backend] = {"examples": ex, "y": y, "scores": s, "pred": pred, "docs": docs}
        up = _pred_path(out, backend, "unseen")
        if up.is_file() and unseen:
            uprd = read_predictions(up)
            uex, uy, us, upred = _gold_and_scores(unseen, uprd)
            b["unseen"] = _with_intervals(uy, upred, n_boot, groups=[e.passage.doc_id for e in uex])
            b["unseen"]["per_province"] = {r: multilabel_report(uy[m], upred[m])
                                           for r in sorted({e.passage.region for e in uex})
                                           if (m := np.array([e.passage.region == r for e in uex])).any()}
            pooled[backend]["unseen"] = (uex, uy, upred)
        report["backends"][backend] = b
    if "bert" in pooled and "tfidf" in pooled:
        a, t = pooled["bert"], pooled["tfidf"]
        same = [e.passage_id for e in a["examples"]] == [e.passage_id for e in t["examples"]]
        if same:
            report["comparison"]["loro_macro_f1_bert_minus_tfidf"] = {
                "passages": paired_bootstrap(macro_f1, a["y"], a["pred"], t["pred"], n_boot=n_boot),
                "documents": paired_bootstrap(macro_f1, a["y"], a["pred"], t["pred"], n_boot=n_boot, groups=a["docs"])}
        if "unseen" in a and "unseen" in t:
            (uex, uy, ua), (_, _, ut) = a["unseen"], t["unseen"]
            report["comparison"]["unseen_macro_f1_bert_minus_tfidf"] = {
                "passages": paired_bootstrap(macro_f1, uy, ua, ut, n_boot=n_boot),
                "documents": paired_bootstrap(macro_f1, uy, ua, ut, n_boot=n_boot,
                                              groups=[e.passage.doc_id for e in uex])}
    if pooled:
        any_b = next(iter(pooled.values()))
        report["cooccurrence_gold"] = cooccurrence(any_b["y"])
    agreement_path = resolve_path(config.report.agreement)
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
    report["model_card"] = model_card_section(report)
    out.mkdir(parents=True, exist_ok=True)
    from policyclf.report_html import write_html

    (out / "report.json").write_text(json.dumps(clean_json(report), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    write_html(report, pooled, out / "report.html")
    return report


def clean_json(obj: Any) -> Any:
    """JSON-safe: NaN → null, numpy scalars → floats."""
    import math

    import numpy as np

    if isinstance(obj, dict):
        return {str(k): clean_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_json(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(float(obj)) else round(float(obj), 5)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def headline_rows(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows of the short results table README shows."""
    rows = []
    for backend, b in report["backends"].items():
        for split in ("loro", "unseen"):
            if split not in b:
                continue
            r = b[split]
            ci = r["ci_passages"]["macro_f1"]
            rows.append({"backend": backend, "test": "leave-one-region-out" if split == "loro" else "unseen provinces",
                         "n": r["n"], "macro_f1": r["macro_f1"], "macro_f1_lo": ci["lo"], "macro_f1_hi": ci["hi"],
                         "micro_f1": r["micro_f1"], "sample_f1": r["sample_f1"]})
    if "human_ceiling" in report:
        rows.append({"backend": "human coders (vs adjudicated)", "test": "double-coded six-region passages",
                     "n": report["human_ceiling"]["passages"], "macro_f1": report["human_ceiling"]["macro_f1"]})
    return rows


def headline_markdown(report: dict[str, Any]) -> str:
    """The headline table as Markdown (for README and the model card)."""
    lines = ["| model | test set | passages | macro-F1 [95% CI] | micro-F1 | sample-F1 |", "|---|---|---|---|---|---|"]
    for r in report["headline"]:
        ci = f" [{r['macro_f1_lo']:.3f}, {r['macro_f1_hi']:.3f}]" if "macro_f1_lo" in r else ""
        micro = f"{r['micro_f1']:.3f}" if "micro_f1" in r else "—"
        sample = f"{r['sample_f1']:.3f}" if "sample_f1" in r else "—"
        lines.append(f"| {r['backend']} | {r['test']} | {r['n']} | {r['macro_f1']:.3f}{ci} | {micro} | {sample} |")
    comp = report.get("comparison", {}).get("loro_macro_f1_bert_minus_tfidf", {}).get("documents")
    if comp:
        lines.append("")
        lines.append(f"BERT − TF-IDF macro-F1 (leave-one-region-out, paired document bootstrap): "
                     f"{comp['diff']:+.3f} [{comp['lo']:+.3f}, {comp['hi']:+.3f}], p = {comp['p_value']:.3f}")
    return "\n".join(lines)


def model_card_section(report: dict[str, Any]) -> str:
    """The model-card 'evaluation' section, generated from the report's numbers."""
    from policyclf.labels import CATEGORIES

    parts = ["## Evaluation (generated by `policyclf report`)", "", headline_markdown(report), "",
             "Per-category F1 on leave-one-region-out, next to the human ceiling (mean F1 of the two coders "
             "against the adjudicated labels):", "",
             "| category | " + " | ".join(report["backends"]) + " | human ceiling |",
             "|---|" + "---|" * (len(report["backends"]) + 1)]
    hc = report.get("human_ceiling", {}).get("per_category", {})
    for cat in CATEGORIES:
        cells = []
        for b in report["backends"].values():
            f1 = b["loro"]["per_category"][cat]["f1"]
            cells.append("—" if f1 != f1 else f"{f1:.3f}")
        h = hc.get(cat)
        parts.append(f"| {cat} | " + " | ".join(cells) + f" | {'—' if h is None else f'{h:.3f}'} |")
    return "\n".join(parts)
