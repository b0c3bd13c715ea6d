#!/usr/bin/env python3
"""Render MODEL_CARD.md for the shipped models and README's results table from a report.

Every number comes from the models' meta.json and the report's report.json (see
policyclf.model_card); nothing is typed in by hand.
Usage: scripts/write_model_cards.py [--report reports/v3]
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

TITLES = {"policyclf-bert": "policyclf-bert (12 layers, v3 data; member of policyclf-ensemble)",
          "policyclf-tfidf": "policyclf-tfidf (the default since 2026-12-07)",
          "policyclf-ensemble": "policyclf-ensemble (policyclf-bert + policyclf-tfidf; the most accurate)",
          "policyclf-distilled": "policyclf-distilled (the v2 3-layer student; the default 2026-12-02 to 2026-12-07)"}
# not in the report the cards are written from (a v2 model): its card shows the teacher comparison instead
NO_REPORT = {"policyclf-distilled"}
EXTRA = {"policyclf-tfidf": ["""## Status
The default model (used when `--model` is not given) since 2026-12-07. The default must run at ≥ 50
passages/s on 2 AVX2 cores (issue 11), which the 12-layer `policyclf-bert` and `policyclf-ensemble` do
not; among the models that do, this one beats the v2 student `policyclf-distilled` in leave-one-region-out
by +0.068 [+0.049, +0.086] macro-F1 (same 3,159 passages and labels; `reports/v3/compare/tfidf_v3_vs_student_v2.md`).
A v3 student replaces it once it is within 0.01 of its teacher on both held-out tests."""],
         "policyclf-ensemble": ["""## Status
Not the default: it runs at about a tenth of TF-IDF's speed (README, "Speed"). Use it with
`--model models/policyclf-ensemble` where accuracy matters more than time. Chosen by the selection
protocol (two folds inside the training data) and confirmed by leave-one-region-out against its BERT member:
+0.018 [+0.010, +0.027] (`reports/v3/compare/ensemble_v3_vs_bert_loro.md`). The members under `members/` are
byte-identical copies of `models/policyclf-bert` and `models/policyclf-tfidf` and load on their own."""],
         "policyclf-distilled": ["""## Status
The default model from 2026-12-02 to 2026-12-07, when the v3 TF-IDF replaced it (+0.068 [+0.049, +0.086]
in leave-one-region-out on the final v3 labels). It is the student of the **v2** 12-layer teacher, trained
on the 5,159 v2 passages; `models/policyclf-bert` is now the v3 teacher, so the comparison below is with
the v2 teacher. A v3 student replaces this model once it is within 0.01 of its teacher on both held-out
tests. When it became the default, the rule was met:
- unseen provinces: the comparison above (float32, `scripts/compare_student.py`);
- leave-one-region-out, the same recipe with a teacher trained inside every fold
  (`reports/distilled`, per fold in `reports/distilled/against_teacher.md`): 0.734 against the teacher
  recipe's 0.741 (`reports/v2`), −0.007 [−0.018, +0.005], 96.2 % of decisions agree; held-out Zhejiang
  alone −0.034 [−0.054, −0.017], the other five folds within ±0.011.

Trained with the current code: sentence spans cut from the validation passages are not trained on.
Speed against the teacher: about 3.4× end to end (`policyclf predict`, 3,159 passages, float32) on 2-core AVX2 CPUs (the EPYC, and the Xeon held to AVX2); README, "Speed"."""]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", type=Path, default=ROOT / "reports" / "v3")
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
