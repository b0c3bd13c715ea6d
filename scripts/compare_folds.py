#!/usr/bin/env python3
"""Two sets of saved split predictions (e.g. a student and the teacher recipe in the selection
protocol) compared split by split and pooled: macro-F1 of each, paired document bootstrap of
A − B and the share of decisions on which they agree. Gold labels come from the annotation files.

Usage:
  scripts/compare_folds.py runs/select/distilled-l3/seed13/predictions/distilled \
      runs/select/bert-top4-v1/seed13/predictions/bert [--annotations data/annotated/six_regions.jsonl ...]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyclf.corpus import load_examples, load_passages  # noqa: E402
from policyclf.protocol import compare_prediction_sets  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path, help="predictions folder A (split.jsonl files)")
    ap.add_argument("b", type=Path, help="predictions folder B")
    ap.add_argument("--annotations", nargs="+", type=Path,
                    default=[ROOT / "data" / "annotated" / "six_regions.jsonl",
                             ROOT / "data" / "annotated" / "six_regions_pool.jsonl"])
    ap.add_argument("--bootstrap", type=int, default=1000)
    args = ap.parse_args()
    examples = load_examples(args.annotations, load_passages())
    out = compare_prediction_sets(args.a, args.b, examples, n_boot=args.bootstrap)
    print(json.dumps(out, indent=1))
    print("\n| split | passages | A | B | A − B [95 % CI] | p | decisions agree |\n|---|---|---|---|---|---|---|",
          file=sys.stderr)
    for r in [*out["splits"], *([out["pooled"]] if "pooled" in out else [])]:
        print(f"| {r['split']} | {r['passages']} | {r['a_macro_f1']:.3f} | {r['b_macro_f1']:.3f} | "
              f"{r['diff']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] | {r['p_value']:.2f} | "
              f"{100 * r['decision_agreement']:.1f} % |", file=sys.stderr)


if __name__ == "__main__":
    main()
