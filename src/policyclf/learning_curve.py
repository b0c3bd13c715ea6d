"""The learning curve of the active-learning rounds: held-out quality against coded passages.

Points are cumulative training sets: the v1 six-region set (``base``), then base plus each
active-learning round in order (``al1``, ``al1+al2``, …), and base plus the random control
round(s); the end point ``all`` (every round) is the report's main protocol. Every point runs
the report protocol (leave-one-region-out on the ``six_regions`` passages and the
unseen-province test) with the same config, so the points differ only in data.
Round kinds come from the picks logs in ``data/annotated/rounds/`` (``run_strategy``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.corpus import REGIONS, annotations_dir, read_jsonl
from policyclf.errors import DataError


@dataclass(frozen=True)
class CurvePoint:
    name: str
    arm: str  # "active" or "random" (the base point belongs to both)
    rounds: tuple[str, ...]


def round_strategies(root: str | Path | None = None) -> dict[str, str]:
    """Round name → the strategy that picked it, from ``data/annotated/rounds/*.picks.jsonl``."""
    out: dict[str, str] = {}
    for path in sorted((annotations_dir(root) / "rounds").glob("*.picks.jsonl")):
        for _, rec in read_jsonl(path):
            out[path.name.removesuffix(".picks.jsonl")] = rec.get("run_strategy", rec.get("strategy", ""))
            break
    return out


def curve_points(strategies: dict[str, str], base: Sequence[str] = ()) -> list[CurvePoint]:
    """Cumulative points: base (the v1 set plus the ``base`` rounds), then base plus the other active
    rounds in order, and base plus the other random rounds in order."""
    base = tuple(base)
    active = sorted(r for r, s in strategies.items() if s != "random" and r not in base)
    random_rounds = sorted(r for r, s in strategies.items() if s == "random" and r not in base)
    points = [CurvePoint("base", "both", base)]
    for k in range(1, len(active) + 1):
        points.append(CurvePoint("+".join(active[:k]), "active", base + tuple(active[:k])))
    cum: list[str] = []
    for r in random_rounds:
        cum.append(r)
        points.append(CurvePoint("+".join(cum), "random", base + tuple(cum)))
    return points


def point_config(config: Any, point: CurvePoint, backends: list[str]) -> Any:
    cfg = copy.deepcopy(config)
    cfg.data.rounds = None if point.name == "all" else list(point.rounds)
    cfg.report.backends = backends
    return cfg


def run_curve(config: Any, out: str | Path, backends: list[str], *, corpus: str | None = None,
              only: list[str] | None = None, log: Any = print) -> list[CurvePoint]:
    """Run the protocol for every curve point (resumable: finished splits are skipped)."""
    from policyclf.protocol import run_protocol

    points = curve_points(round_strategies(), config.report.curve_base)
    if not points[1:]:
        raise DataError("no coding rounds under data/annotated/rounds: nothing to draw a curve from")
    for p in points:
        if only and p.name not in only:
            continue
        log(f"curve point {p.name} ({p.arm})")
        run_protocol(point_config(config, p, backends), Path(out) / "curve" / p.name, corpus=corpus, log=log)
    return points


def curve_numbers(config: Any, out: str | Path, corpus: str | None = None) -> list[dict[str, Any]]:
    """One row per (point, backend) with saved predictions: passages, macro-F1, per-category F1."""
    from policyclf.evaluation import compute_report
    from policyclf.training import training_examples

    rows = []
    strategies = round_strategies()
    points = [(p, Path(out) / "curve" / p.name) for p in curve_points(strategies, config.report.curve_base)]
    # the end point, every round together, is the main protocol of the same report
    points.append((CurvePoint("all", "both", tuple(strategies)), Path(out)))
    for p, folder in points:
        if not (folder / "predictions").is_dir():
            continue
        backends = sorted(d.name for d in (folder / "predictions").iterdir() if d.is_dir())
        cfg = point_config(config, p, backends)
        cfg.report.bootstrap = 100
        report, _ = compute_report(cfg, folder, corpus)
        n_train = len(training_examples(cfg, corpus))
        for b, data in report["backends"].items():
            if data["loro"].get("missing_regions"):
                continue  # a run still going (or restricted to some regions) is not a point of the curve
            row = {"point": p.name, "arm": p.arm, "backend": b, "passages": n_train,
                   "loro_macro_f1": data["loro"]["macro_f1"],
                   "loro_per_category": {c: v["f1"] for c, v in data["loro"]["per_category"].items()}}
            if "unseen" in data:
                row["unseen_macro_f1"] = data["unseen"]["macro_f1"]
                row["unseen_per_category"] = {c: v["f1"] for c, v in data["unseen"]["per_category"].items()}
            rows.append(row)
    return rows


def end_against_base(config: Any, out: str | Path, corpus: str | None = None,
                     n_boot: int = 1000) -> list[dict[str, Any]]:
    """Each backend's end point (every round) against its base point (v1 data), paired.

    Same recipe, same test passages; only the training data differ. Rows per backend and test
    (leave-one-region-out, its work-report and regulation passages, unseen provinces): both
    macro-F1 and the difference end − base with a paired document-bootstrap interval and p-value.
    """
    from policyclf.evaluation import gold_and_scores
    from policyclf.metrics import macro_f1, paired_bootstrap
    from policyclf.protocol import (
        TEST_POOL,
        prediction_path,
        read_predictions,
        unseen_examples,
    )
    from policyclf.training import training_examples

    out = Path(out)
    base_dir = out / "curve" / "base"
    six = [e for e in training_examples(config, corpus) if e.passage.pool == TEST_POOL]
    unseen = unseen_examples(config, corpus)
    rows = []
    for backend in sorted(d.name for d in (base_dir / "predictions").glob("*") if d.is_dir()):
        for test, splits, examples in (("loro", [f"loro-{r}" for r in REGIONS], six), ("unseen", ["unseen"], unseen)):
            preds = {}
            for folder in (base_dir, out):
                found = [prediction_path(folder, backend, s) for s in splits]
                preds[folder] = {k: v for p in found if p.is_file() for k, v in read_predictions(p).items()}
            both = [e for e in examples if e.passage_id in preds[base_dir] and e.passage_id in preds[out]]
            if test == "loro" and len({e.passage.region for e in both}) < len({e.passage.region for e in examples}):
                continue  # a region not run at one of the two points: no pooled comparison yet
            if not both:
                continue
            _, y, _, base_pred = gold_and_scores(both, preds[base_dir])
            _, _, _, end_pred = gold_and_scores(both, preds[out])
            subsets = [(test, np.ones(len(both), bool))]
            if test == "loro":
                subsets += [(f"loro {t}", np.array([e.passage.doc_type == t for e in both]))
                            for t in ("work_report", "regulation")]
            for name, m in subsets:
                if not m.any():
                    continue
                docs = [e.passage.doc_id for e, k in zip(both, m) if k]
                d = paired_bootstrap(macro_f1, y[m], end_pred[m], base_pred[m], n_boot=n_boot, groups=docs)
                rows.append({"backend": backend, "test": name, "n": int(m.sum()),
                             "base_macro_f1": macro_f1(y[m], base_pred[m]), "end_macro_f1": macro_f1(y[m], end_pred[m]),
                             "diff": d["diff"], "lo": d["lo"], "hi": d["hi"], "p_value": d["p_value"]})
    return rows


def comparison_markdown(rows: list[dict[str, Any]]) -> str:
    """The end-against-base table (Markdown)."""
    lines = ["| model | test | passages | base point | end point (all rounds) | end − base [95% CI] | p |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['backend']} | {r['test']} | {r['n']} | {r['base_macro_f1']:.3f} | {r['end_macro_f1']:.3f} | "
                     f"{r['diff']:+.3f} [{r['lo']:+.3f}, {r['hi']:+.3f}] | {r['p_value']:.3f} |")
    return "\n".join(lines)


def curve_markdown(rows: list[dict[str, Any]]) -> str:
    """The learning-curve table (Markdown)."""
    from policyclf.labels import CATEGORIES

    short = {c: c.split("_")[0][:6] for c in CATEGORIES}
    head = ["point", "arm", "model", "passages", "LORO macro-F1", "unseen macro-F1", *[f"LORO {short[c]}" for c in CATEGORIES]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        unseen = f"{r['unseen_macro_f1']:.3f}" if "unseen_macro_f1" in r else "—"
        cats = [f"{r['loro_per_category'][c]:.3f}" for c in CATEGORIES]
        lines.append(f"| {r['point']} | {r['arm']} | {r['backend']} | {r['passages']} | {r['loro_macro_f1']:.3f} | "
                     f"{unseen} | " + " | ".join(cats) + " |")
    return "\n".join(lines)


def write_curve(rows: list[dict[str, Any]], out: str | Path,
                comparison: list[dict[str, Any]] | None = None) -> None:
    """``curve.json`` and ``curve.md`` (and ``curve_comparison.json``, if given) into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    text = curve_markdown(rows) + "\n"
    if comparison:
        (out / "curve_comparison.json").write_text(json.dumps(comparison, indent=1) + "\n", encoding="utf-8")
        text += ("\nEnd point against base point, same recipe and test passages (paired document bootstrap):\n\n"
                 + comparison_markdown(comparison) + "\n")
    (out / "curve.md").write_text(text, encoding="utf-8")
