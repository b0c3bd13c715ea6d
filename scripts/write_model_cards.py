#!/usr/bin/env python3
"""Render MODEL_CARD.md for the shipped models and README's results table from a report.

Every number comes from the models' meta.json and the report's report.json (see
policyclf.model_card); nothing is typed in by hand.
Usage: scripts/write_model_cards.py [--report reports/v2]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyclf.model_card import write_model_card  # noqa: E402
from policyclf.report import headline_markdown  # noqa: E402

TITLES = {"policyclf-bert": "policyclf-bert (12 layers; the teacher of the default model)",
          "policyclf-tfidf": "policyclf-tfidf (baseline)",
          "policyclf-distilled": "policyclf-distilled (default: a 3-layer student of policyclf-bert)"}
NO_REPORT = {"policyclf-distilled"}  # not in the report's protocol yet: its card shows the teacher comparison instead
EXTRA = {"policyclf-distilled": ["""## Status
The default model (used when `--model` is not given) since 2026-12-02. A student becomes the default only
if its macro-F1 is within 0.01 of its teacher's on both the leave-one-region-out and the unseen-province
tests:
- unseen provinces: the comparison above (float32, `scripts/compare_student.py`);
- leave-one-region-out, the same recipe with a teacher trained inside every fold
  (`reports/distilled`, per fold in `reports/distilled/against_teacher.md`): 0.734 against the teacher
  recipe's 0.741 (`reports/v2`), −0.007 [−0.018, +0.005], 96.2 % of decisions agree; held-out Zhejiang
  alone −0.034 [−0.054, −0.017], the other five folds within ±0.011.

Trained with the current code: sentence spans cut from the validation passages are not trained on.
Speed against the teacher: about 3.4× end to end (`policyclf predict`, 3,159 passages, float32) on 2-core AVX2 CPUs (the EPYC, and the Xeon held to AVX2); README, "Speed"."""]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", type=Path, default=ROOT / "reports" / "v2")
    ap.add_argument("--readme", action="store_true", help="also rewrite README's results table")
    args = ap.parse_args()
    report_json = args.report / "report.json"
    for name, title in TITLES.items():
        d = ROOT / "models" / name
        if (d / "meta.json").is_file():
            print(f"wrote {write_model_card(d, None if name in NO_REPORT else report_json, title, EXTRA.get(name))}")
    if args.readme:
        report = json.loads(report_json.read_text(encoding="utf-8"))
        readme = ROOT / "README.md"
        start, end = "<!-- results:start -->", "<!-- results:end -->"
        block = f"{start}\n{headline_markdown(report)}\n{end}"
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, readme.read_text(encoding="utf-8"),
                      flags=re.S)
        readme.write_text(text, encoding="utf-8")
        print("README results table updated")


if __name__ == "__main__":
    main()
