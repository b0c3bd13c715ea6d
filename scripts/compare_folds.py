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


def to_markdown(out: dict, a_name: str = "A", b_name: str = "B") -> str:
    """The split table, and for the pooled comparison the per-genre and per-category tables."""
    lines = [f"| split | passages | {a_name} | {b_name} | {a_name} − {b_name} [95 % CI] | p | decisions agree |",
             "|---|---|---|---|---|---|---|"]
    for r in [*out["splits"], *([out["pooled"]] if "pooled" in out else [])]:
        lines.append(f"| {r['split']} | {r['passages']} | {r['a_macro_f1']:.3f} | {r['b_macro_f1']:.3f} | "
                     f"{r['diff']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] | {r['p_value']:.2f} | "
                     f"{100 * r['decision_agreement']:.1f} % |")
    top = out.get("pooled") or (out["splits"][0] if len(out["splits"]) == 1 else None)
    if top and top.get("per_doc_type"):
        lines += ["", "Per genre (macro over the categories with ≥ 20 positives in the genre):", "",
                  f"| genre | passages | categories | {a_name} macro / micro | {b_name} macro / micro | "
                  f"{a_name} − {b_name} macro [95 % CI] | p |", "|---|---|---|---|---|---|---|"]
        for g, r in top["per_doc_type"].items():
            if "diff" in r:
                lines.append(f"| {g} | {r['passages']} | {len(r['supported_categories'])} | "
                             f"{r['a_macro_f1_supported']:.3f} / {r['a_micro_f1']:.3f} | "
                             f"{r['b_macro_f1_supported']:.3f} / {r['b_micro_f1']:.3f} | "
                             f"{r['diff']:+.3f} [{r['ci'][0]:+.3f}, {r['ci'][1]:+.3f}] | {r['p_value']:.3f} |")
            else:
                lines.append(f"| {g} | {r['passages']} | 0 | — / {r['a_micro_f1']:.3f} | — / {r['b_micro_f1']:.3f} | "
                             "no category with ≥ 20 positives | |")
    if top and top.get("per_category"):
        lines += ["", "Per category (F1; support = positives in the test passages):", "",
                  f"| category | support | {a_name} | {b_name} | {a_name} − {b_name} |", "|---|---|---|---|---|"]
        for c, r in top["per_category"].items():
            lines.append(f"| {c} | {r['support']} | {r['a_f1']:.3f} | {r['b_f1']:.3f} | {r['a_f1'] - r['b_f1']:+.3f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("a", type=Path, help="predictions folder A (split.jsonl files)")
    ap.add_argument("b", type=Path, help="predictions folder B")
    ap.add_argument("--annotations", nargs="+", type=Path,
                    default=[ROOT / "data" / "annotated" / "six_regions.jsonl",
                             ROOT / "data" / "annotated" / "six_regions_pool.jsonl"])
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--names", nargs=2, default=["A", "B"], help="column names of A and B in the tables")
    ap.add_argument("--json", type=Path, help="write the comparison here")
    ap.add_argument("--md", type=Path, help="write the tables here (with --title as heading)")
    ap.add_argument("--title", default="")
    args = ap.parse_args()
    examples = load_examples(args.annotations, load_passages())
    out = compare_prediction_sets(args.a, args.b, examples, n_boot=args.bootstrap)
    md = to_markdown(out, *args.names)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    if args.md:
        args.md.parent.mkdir(parents=True, exist_ok=True)
        args.md.write_text((f"# {args.title}\n\n" if args.title else "") + md)
    if not args.json:
        print(json.dumps(out, indent=1))
    print("\n" + md, file=sys.stderr)


if __name__ == "__main__":
    main()
