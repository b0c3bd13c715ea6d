#!/usr/bin/env python3
"""`policyclf predict` end to end, as a user runs it: a passage .jsonl of N corpus passages (written
to a temporary folder outside the repository), one `policyclf predict` process per model, timed by
the wall clock from process start to exit (imports, model load, tokenisation, scoring, writing).
Also reports the run's own start-up (`policyclf predict` on a 1-passage file) so that start-up and
throughput can be told apart, and the decision agreement between the models' outputs. With
`--pipeline`, the baseline of issue 11 is timed the same way: a process that imports transformers,
loads the whole base encoder (float32) with a 7-label head and scores the same passages one at a
time through a `pipeline`, from process start to exit.

Usage: python benchmarks/bench_predict.py [--n 500] [--models models/policyclf-distilled models/policyclf-bert] [--pipeline]
Prints the CPU, its flags and one JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(model: str, src: Path, out: Path, extra: list[str]) -> float:
    cmd = [sys.executable, "-m", "policyclf", "predict", str(src), "-o", str(out), "--model", model, "--force",
           "--quiet", *extra]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


PIPELINE = """
import json, sys
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
from transformers.utils import logging
logging.set_verbosity_error()
src, base, max_length = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=7, problem_type="multi_label_classification")
pipe = pipeline("text-classification", model=model, tokenizer=AutoTokenizer.from_pretrained(base), device=-1, top_k=None,
                function_to_apply="sigmoid")
for line in open(src, encoding="utf-8"):
    pipe(json.loads(line)["text"], truncation=True, max_length=max_length)
"""


def run_pipeline(src: Path, base: str, max_length: int) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", PIPELINE, str(src), base, str(max_length)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, nargs="+", default=[500])
    ap.add_argument("--models", nargs="+", default=["models/policyclf-distilled", "models/policyclf-bert"])
    ap.add_argument("--precision", default=None, help="passed to --precision (default: the model's)")
    ap.add_argument("--pipeline", action="store_true",
                    help="also time a plain transformers float32 pipeline, one passage at a time, end to end")
    args = ap.parse_args()
    import numpy as np

    from policyclf.corpus import load_passages
    from policyclf.hardware import cpu_info, describe_cpu, isa_limits

    passages = list(load_passages().values())
    rng = np.random.default_rng(0)
    order = rng.permutation(len(passages))
    extra = ["--precision", args.precision] if args.precision else []
    if args.pipeline:  # the baseline runs the first model's base encoder at its window length
        from policyclf.models.base import read_model_config
        from policyclf.models.base_model import resolve_base_model

        conf = read_model_config(args.models[0]).model
    out: dict = {"cpu": describe_cpu(), "cpu_flags": cpu_info()["flags"], "os_cpus": os.cpu_count(),
                 "isa_limits": isa_limits(), "runs": []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for n in [1, *args.n]:
            src = tmp / f"p{n}.jsonl"
            with src.open("w", encoding="utf-8") as f:
                for i in order[:n]:
                    p = passages[i]
                    f.write(json.dumps({"passage_id": p.passage_id, "text": p.text}, ensure_ascii=False) + "\n")
            for model in args.models:
                seconds = run(model, src, tmp / f"{Path(model).name}-{n}.jsonl", extra)
                out["runs"].append({"model": model, "passages": n, "seconds": round(seconds, 2),
                                    "passages_per_s": round(n / seconds, 1)})
            if args.pipeline and n > 1:
                seconds = run_pipeline(src, str(resolve_base_model(conf.base_model)), conf.max_length)
                out["runs"].append({"model": "transformers pipeline (whole base encoder, float32, one passage at a time)",
                                    "passages": n, "seconds": round(seconds, 2), "passages_per_s": round(n / seconds, 1)})
                first = next(r for r in out["runs"] if r["model"] == args.models[0] and r["passages"] == n)
                out[f"speedup_{Path(args.models[0]).name}_vs_pipeline_n{n}"] = round(seconds / first["seconds"], 2)
        for n in args.n:
            rows = {m: [json.loads(x) for x in (tmp / f"{Path(m).name}-{n}.jsonl").read_text().splitlines()]
                    for m in args.models}
            first = args.models[0]
            for other in args.models[1:]:
                pairs = [(set(a["labels"]), set(b["labels"])) for a, b in zip(rows[first], rows[other])]
                from policyclf.labels import CATEGORIES

                agree = np.mean([(c in a) == (c in b) for a, b in pairs for c in CATEGORIES])
                out[f"decision_agreement_{Path(first).name}_vs_{Path(other).name}_n{n}"] = round(float(agree), 4)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
