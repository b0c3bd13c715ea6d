#!/usr/bin/env python3
"""What the v3 extension pool adds, by source: the leave-one-region-out protocol retrained with one
source of ``extension_pool`` left out (``data.exclude_sources``), compared with the full run on the
same test passages (paired document bootstrap of macro-F1, per category and per genre).

Sources: provincial_laws, national_laws, provincial_work_reports, state_council_reports; the
variant ``work_reports`` leaves out both work-report sources, ``extension`` all four (the v2-style
six-region-only model). Runs resume per split (finished predictions are kept).

Usage:
  scripts/source_ablation.py configs/default.toml --full reports/v3 -o reports/v3/sources \
      --backend tfidf [--variants provincial_laws national_laws ...] [--folds beijing guangdong]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyclf.config import load_config  # noqa: E402
from policyclf.corpus import EXTENSION_SOURCES, REGIONS  # noqa: E402
from policyclf.protocol import compare_prediction_sets, run_protocol  # noqa: E402
from policyclf.training import training_examples  # noqa: E402

VARIANTS = {**{s: [s] for s in EXTENSION_SOURCES},
            "work_reports": ["provincial_work_reports", "state_council_reports"],
            "extension": list(EXTENSION_SOURCES)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("config", type=Path)
    ap.add_argument("--full", type=Path, required=True, help="the report folder of the run with every source")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--backend", default="tfidf")
    ap.add_argument("--variants", nargs="+", default=list(EXTENSION_SOURCES), choices=list(VARIANTS))
    ap.add_argument("--folds", nargs="+", default=list(REGIONS), choices=list(REGIONS))
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--corpus")
    args = ap.parse_args()
    rows = []
    full_dir = args.full / "predictions" / args.backend
    examples = training_examples(load_config(args.config), args.corpus)  # every source: the gold for comparisons
    for variant in args.variants:
        cfg = load_config(args.config, {"data.exclude_sources": json.dumps(VARIANTS[variant]),
                                        "report.loro_regions": json.dumps(args.folds), "report.unseen": "false",
                                        "report.backends": json.dumps([args.backend])})
        out = args.output / variant
        started = time.time()
        run_protocol(cfg, out, corpus=args.corpus, log=lambda m: print(m, file=sys.stderr))
        cmp = compare_prediction_sets(out / "predictions" / args.backend, full_dir, examples, n_boot=args.bootstrap)
        left_out = len(examples) - len(training_examples(cfg, args.corpus))
        rows.append({"variant": variant, "left_out_sources": VARIANTS[variant], "left_out_passages": left_out,
                     "wall_seconds": round(time.time() - started), **cmp})
        print(f"{variant}: without {left_out} passages, macro-F1 {cmp['pooled']['a_macro_f1']:.3f} "
              f"against {cmp['pooled']['b_macro_f1']:.3f} with every source", file=sys.stderr)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / f"sources-{args.backend}.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    lines = [f"Leave-one-region-out ({', '.join(args.folds)}), {args.backend}: each variant retrained without the "
             "named extension sources, scored on the same six-region passages as the run with every source "
             f"(`{args.full}`). Difference = without − with, paired document bootstrap; genre macro-F1 counts "
             "categories with ≥ 20 positives in the genre.", "",
             "| left out | passages left out | macro-F1 without | with every source | without − with [95 % CI] | p "
             "| regulations without / with | work reports without / with |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        p, g = r["pooled"], r["pooled"].get("per_doc_type", {})

        def genre(t: str) -> str:
            v = g.get(t, {})
            return (f"{v['a_macro_f1_supported']:.3f} / {v['b_macro_f1_supported']:.3f}"
                    if "a_macro_f1_supported" in v else "—")
        lines.append(f"| {r['variant']} | {r['left_out_passages']:,} | {p['a_macro_f1']:.3f} | {p['b_macro_f1']:.3f} | "
                     f"{p['diff']:+.3f} [{p['ci'][0]:+.3f}, {p['ci'][1]:+.3f}] | {p['p_value']:.2f} | "
                     f"{genre('regulation')} | {genre('work_report')} |")
    (args.output / f"sources-{args.backend}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
