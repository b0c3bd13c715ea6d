"""The learning curve of the active-learning rounds: held-out quality against coded passages.

Points are cumulative training sets: the v1 six-region set (``base``), then base plus each
active-learning round in order (``al1``, ``al1+al2``, …), and base plus the random control
round(s); the end point ``all`` (every round) is the report's main protocol. Every point runs the report protocol (leave-one-region-out on the ``six_regions``
passages and the unseen-province test) with the same config, so the points differ only in data.
Round kinds come from the picks logs in ``data/annotated/rounds/`` (``run_strategy``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyclf.corpus import annotations_dir, read_jsonl
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


def curve_points(strategies: dict[str, str]) -> list[CurvePoint]:
    """Cumulative points: base, the active rounds in order, and each random round on its own."""
    active = sorted(r for r, s in strategies.items() if s != "random")
    random_rounds = sorted(r for r, s in strategies.items() if s == "random")
    points = [CurvePoint("base", "both", ())]
    for k in range(1, len(active) + 1):
        points.append(CurvePoint("+".join(active[:k]), "active", tuple(active[:k])))
    cum: list[str] = []
    for r in random_rounds:
        cum.append(r)
        points.append(CurvePoint("+".join(cum), "random", tuple(cum)))
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

    points = curve_points(round_strategies())
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
    points = [(p, Path(out) / "curve" / p.name) for p in curve_points(round_strategies())]
    # the end point, every round together, is the main protocol of the same report
    points.append((CurvePoint("all", "both", tuple(round_strategies())), Path(out)))
    for p, folder in points:
        if not (folder / "predictions").is_dir():
            continue
        backends = sorted(d.name for d in (folder / "predictions").iterdir() if d.is_dir())
        cfg = point_config(config, p, backends)
        cfg.report.bootstrap = 100
        report, _ = compute_report(cfg, folder, corpus)
        n_train = len(training_examples(cfg, corpus))
        for b, data in report["backends"].items():
            row = {"point": p.name, "arm": p.arm, "backend": b, "passages": n_train,
                   "loro_macro_f1": data["loro"]["macro_f1"],
                   "loro_per_category": {c: v["f1"] for c, v in data["loro"]["per_category"].items()}}
            if "unseen" in data:
                row["unseen_macro_f1"] = data["unseen"]["macro_f1"]
                row["unseen_per_category"] = {c: v["f1"] for c, v in data["unseen"]["per_category"].items()}
            rows.append(row)
    return rows


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


def write_curve(rows: list[dict[str, Any]], out: str | Path) -> None:
    """``curve.json`` and ``curve.md`` into ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "curve.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    (out / "curve.md").write_text(curve_markdown(rows) + "\n", encoding="utf-8")
