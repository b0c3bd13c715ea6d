#!/usr/bin/env python3
"""Store a model's held-out error rates in ``MODEL_DIR/error_rates.json`` (what ``policyclf analyze``
corrects with), from the leave-one-region-out predictions that ``policyclf report`` saved and the
gold labels of those passages. Rerun it after a retrain, on that retrain's report predictions.

Usage:
  scripts/model_error_rates.py models/policyclf-distilled --predictions reports/distilled/predictions/distilled
  scripts/model_error_rates.py models/policyclf-bert --predictions reports/v2/predictions/bert
  scripts/model_error_rates.py models/policyclf-tfidf --predictions reports/v2/predictions/tfidf
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyclf.corpus import load_passages  # noqa: E402
from policyclf.error_rates import compute_error_rates, save_error_rates  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model", type=Path)
    ap.add_argument("--predictions", type=Path, required=True, help="folder of loro-*.jsonl held-out predictions")
    ap.add_argument("--annotations", type=Path, nargs="+", default=[ROOT / "data" / "annotated" / "six_regions.jsonl"],
                    help="gold labels of the predicted passages (default: the six-region v1 set, the LORO test passages)")
    ap.add_argument("--corpus", type=Path, default=None)
    args = ap.parse_args()
    files = sorted(args.predictions.glob("loro-*.jsonl"))
    if not files:
        sys.exit(f"error: no loro-*.jsonl in {args.predictions}")
    rel = [f.resolve().relative_to(ROOT).as_posix() if f.resolve().is_relative_to(ROOT) else str(f) for f in files]
    ann = [a.resolve().relative_to(ROOT).as_posix() if a.resolve().is_relative_to(ROOT) else str(a)
           for a in args.annotations]
    rates = compute_error_rates(files, args.annotations, load_passages(args.corpus),
                                source_note="leave-one-region-out: each region's passages predicted by a model "
                                            "trained without that region (scripts/model_error_rates.py)")
    rates.info["predictions"], rates.info["annotations"] = rel, ann
    path = save_error_rates(rates, args.model)
    print(f"{path}: {len(rates)} documents, {int(rates.n.sum())} passages")
    for cat, t in rates.summary().items():
        print(f"  {cat:24s} TPR {t['tpr']:.3f} ({t['tp']}/{t['passages_pos']})  FPR {t['fpr']:.3f} "
              f"({t['fp']}/{t['passages_neg']})")


if __name__ == "__main__":
    main()
