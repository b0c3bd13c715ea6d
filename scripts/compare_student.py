#!/usr/bin/env python3
"""A distilled student against its teacher on a held-out annotation file (default: the unseen-
province test set): paired document bootstrap of macro-F1 and per-category F1, and the share of
decisions (passage × category) on which the two agree. Stored as ``teacher_comparison`` in the
student's meta.json (the model card shows it) and printed.

Usage: scripts/compare_student.py models/policyclf-bert models/policyclf-distilled [--test FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyclf.retrain import compare_models  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("teacher", type=Path)
    ap.add_argument("student", type=Path)
    ap.add_argument("--test", type=Path, default=ROOT / "data" / "annotated" / "other_provinces_test.jsonl")
    ap.add_argument("--bootstrap", type=int, default=1000)
    ap.add_argument("--precision", default="float32",
                    help="score both models in this precision (default float32: the same result on every CPU; "
                         "'auto' = each model's own choice on this machine)")
    args = ap.parse_args()
    comp = compare_models(args.teacher, args.student, args.test, n_boot=args.bootstrap,
                          precision=None if args.precision == "auto" else args.precision)
    comp["precision"] = args.precision
    meta_path = args.student / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["teacher_comparison"] = comp
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    m = comp["macro_f1"]
    print(json.dumps({"test": comp["test"], "passages": comp["passages"], "teacher_macro_f1": comp["current"]["macro_f1"],
                      "student_macro_f1": comp["new"]["macro_f1"], "diff": m["diff"], "ci": [m["lo"], m["hi"]],
                      "p": m["p_value"], "decision_agreement": comp.get("decision_agreement")}, indent=1))


if __name__ == "__main__":
    main()
