#!/usr/bin/env python3
"""The model-selection protocol: compare configurations without ever touching a test set.

Protocol (fixed on 2026-12-01, before any configuration was compared): two leave-one-region-out
folds, held out regions `beijing` and `guangdong` (the first two of the six in alphabetical
order), each trained on every annotated passage of the other five regions (pools included) and
scored on the held-out region's `six_regions` passages. Thresholds come from inside the training
regions (each backend's own inner procedure). The unseen-province set is never used. Macro-F1 is
pooled over the two folds, overall and per document type; each configuration runs for every seed
given, and the table reports the mean and the spread (min–max).

Usage:
  scripts/select_models.py configs/select/*.toml -o runs/select [--seeds 13 14 15] [--backend bert]
Runs resume: a finished (configuration, seed, fold) is not trained again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from policyclf.config import load_config  # noqa: E402
from policyclf.evaluation import compute_report  # noqa: E402
from policyclf.protocol import run_protocol  # noqa: E402

FOLDS = ["beijing", "guangdong"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("configs", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--seeds", nargs="+", type=int, default=[13])
    ap.add_argument("--corpus")
    ap.add_argument("--folds", nargs="+", default=FOLDS, choices=FOLDS,
                    help="run these selection folds, in this order (the table needs both)")
    args = ap.parse_args()
    rows = []
    for path in args.configs:
        cfg0 = load_config(path)
        backend = cfg0.model.backend
        per_seed = []
        for seed in args.seeds:
            cfg = load_config(path, {"training.seed": str(seed), "report.loro_regions": json.dumps(args.folds),
                                     "report.unseen": "false", "report.backends": json.dumps([backend]),
                                     "report.bootstrap": "100"})
            out = args.output / path.stem / f"seed{seed}"
            started = time.time()
            run_protocol(cfg, out, corpus=args.corpus, log=lambda m: print(m, file=sys.stderr))
            report, _ = compute_report(cfg, out, args.corpus)
            loro = report["backends"][backend]["loro"]
            per_seed.append({"seed": seed, "macro_f1": loro["macro_f1"],
                             **{f"macro_f1_{t}": v["macro_f1"] for t, v in loro["per_doc_type"].items()},
                             "train_seconds": loro.get("train_seconds"), "wall_seconds": round(time.time() - started)})
        def agg(key):
            vals = [r[key] for r in per_seed if r.get(key) is not None]
            return {"mean": statistics.mean(vals), "min": min(vals), "max": max(vals)} if vals else None
        rows.append({"config": path.stem, "backend": backend, "seeds": per_seed,
                     **{k: agg(k) for k in ("macro_f1", "macro_f1_regulation", "macro_f1_work_report", "train_seconds")}})
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "selection.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    lines = ["| configuration | backend | seeds | macro-F1 (mean [min, max]) | regulation | work report | training s (2 folds) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        def f(a):
            return "—" if a is None else (f"{a['mean']:.3f}" + (f" [{a['min']:.3f}, {a['max']:.3f}]" if a["min"] != a["max"] else ""))
        ts = r["train_seconds"]
        lines.append(f"| {r['config']} | {r['backend']} | {len(r['seeds'])} | {f(r['macro_f1'])} | "
                     f"{f(r['macro_f1_regulation'])} | {f(r['macro_f1_work_report'])} | "
                     f"{'—' if ts is None else round(ts['mean'])} |")
    (args.output / "selection.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
