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
          "policyclf-distilled": "policyclf-distilled (the v3 3-layer student of policyclf-bert)"}
# not in the report the cards are written from (its LORO row is incomplete): its card shows the teacher comparison instead
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
Not the default. The v3 student of `models/policyclf-bert`: the bottom 3 layers of the same base, all
fine-tuned, trained on the teacher's scores over the 10,519 v3 gold passages and one random sentence span
of each. It is the `reports/v3` unseen-split student (`policyclf report configs/default.toml -o reports/v3
--report.backends '["distilled"]' --reuse-model models/policyclf-bert`: the shipped teacher was that
split's teacher), promoted by `policyclf retrain configs/distilled.toml --against models/policyclf-distilled
--reuse-model ... --promote` over the v2 student: 0.631 → 0.721 on the unseen provinces, +0.091 [+0.015, +0.189].

A student becomes the default only within 0.01 of its teacher on both held-out tests:
- unseen provinces: the comparison above, +0.007 (float32, `scripts/compare_student.py`); within 0.01;
- leave-one-region-out, four of the six folds so far (Beijing, Guangdong, Jiangsu, Shandong; 2,065 passages;
  `scripts/compare_folds.py` on those folds' files in `reports/v3/predictions/{distilled,bert}`): 0.783
  against the teacher's 0.801, **−0.019 [−0.029, −0.007]**; not within 0.01. Shanghai and Zhejiang are not
  run yet.

So the default stays `policyclf-tfidf`. The error rates (`error_rates.json`, used by `policyclf analyze`) come
from the two selection folds only (1,050 held-out passages of Beijing and Guangdong), not six."""]}


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
