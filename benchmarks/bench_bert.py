#!/usr/bin/env python3
"""BERT backend speed on this machine: inference passages/s (float32, bfloat16 and int8, batched and
length-sorted) against a plain transformers text-classification pipeline fed one passage at a
time on the same encoder, plus peak memory and the training time recorded in the model.

Usage: python benchmarks/bench_bert.py [--model models/policyclf-bert] [--n 1000] [--pipeline-n 200]
Reads passages from the corpus (../shared/corpus); prints a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import numpy as np


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/policyclf-bert")
    ap.add_argument("--n", type=int, default=1000, help="corpus passages to score")
    ap.add_argument("--pipeline-n", type=int, default=200, help="passages for the one-at-a-time pipeline")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16", "int8"],
                    help="precisions to time (float32 is always included: the reference)")
    ap.add_argument("--batch-tokens", type=int, nargs="*", default=[],
                    help="also time every precision with these inference_batch_tokens limits (0 = windows only)")
    args = ap.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from policyclf.corpus import load_passages
    from policyclf.models.base import load_model, read_meta

    passages = list(load_passages().values())
    rng = np.random.default_rng(0)
    sample = [passages[i].text for i in rng.choice(len(passages), size=min(args.n, len(passages)), replace=False)]
    model = load_model(args.model)
    inner = getattr(model, "student_", model)  # a distilled model computes with its student
    meta = read_meta(args.model)
    from policyclf.hardware import cpu_info, describe_cpu, isa_limits

    out = {"cpu": describe_cpu(), "cpu_flags": cpu_info()["flags"], "torch_threads": torch.get_num_threads(),
           "isa_limits": isa_limits(),
           "passages": len(sample), "mean_chars": float(np.mean([len(t) for t in sample])),
           "model": args.model, "backend": meta["backend"], "encoder_layers": len(inner.encoder_.encoder.layer),
           "device": str(inner.device_), "runtime": inner.runtime_info()["runtime"],
           "default_precision": model.runtime_info()["precision"],
           "default_precision_reason": model.runtime_info()["precision_reason"]}
    results = {}
    dtypes = ["float32", *[d for d in args.dtypes if d != "float32"]]
    model.predict_proba(sample)  # a whole pass first: the first timed pass after a short warm-up was ~15 % slow
    for dtype in dtypes:
        inner.inference_dtype, inner._precision, inner.quantized_ = dtype, None, None
        model.predict_proba(sample[:64])  # warm-up (and quantization)
        started = time.perf_counter()
        scores = model.predict_proba(sample)
        seconds = time.perf_counter() - started
        results[dtype] = scores
        out[f"policyclf_{dtype}_passages_per_s"] = round(len(sample) / seconds, 1)
    out["inference_batch_size"] = inner.inference_batch_size
    out["inference_batch_tokens"] = inner.inference_batch_tokens
    default_tokens = inner.inference_batch_tokens
    for dtype in dtypes:  # every precision under every extra batch limit (bf16 kernels favour other shapes)
        inner.inference_dtype, inner._precision, inner.quantized_ = dtype, None, None
        for tokens in args.batch_tokens:
            inner.inference_batch_tokens = tokens
            model.predict_proba(sample[:64])
            started = time.perf_counter()
            scores = model.predict_proba(sample)
            out[f"policyclf_{dtype}_batch_tokens_{tokens}_passages_per_s"] = round(len(sample) / (time.perf_counter() - started), 1)
            out[f"{dtype}_batch_tokens_{tokens}_max_abs_score_diff"] = float(np.abs(scores - results[dtype]).max())
        inner.inference_batch_tokens = default_tokens
    for dtype in dtypes[1:]:
        agree = ((results[dtype] >= model.thresholds_) == (results["float32"] >= model.thresholds_)).mean()
        out[f"{dtype}_vs_float32_decision_agreement"] = round(float(agree), 4)
        out[f"{dtype}_vs_float32_max_abs_score_diff"] = round(float(np.abs(results[dtype] - results["float32"]).max()), 4)

    from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline
    from transformers.utils import logging as hf_logging

    from policyclf.models.base_model import resolve_base_model

    hf_logging.set_verbosity_error()
    base = resolve_base_model(inner.base_model)  # the whole base encoder, as a new user would run it
    hf_model = AutoModelForSequenceClassification.from_pretrained(base, num_labels=7, problem_type="multi_label_classification")
    pipe = pipeline("text-classification", model=hf_model, tokenizer=AutoTokenizer.from_pretrained(base),
                    device=-1, top_k=None, function_to_apply="sigmoid")
    few = sample[:args.pipeline_n]
    pipe(few[0], truncation=True, max_length=inner.max_length)
    started = time.perf_counter()
    for text in few:
        pipe(text, truncation=True, max_length=inner.max_length)
    pipe_rate = len(few) / (time.perf_counter() - started)
    out["transformers_pipeline_one_at_a_time_passages_per_s"] = round(pipe_rate, 1)
    for dtype in dtypes:
        out[f"speedup_{dtype}_vs_pipeline"] = round(out[f"policyclf_{dtype}_passages_per_s"] / pipe_rate, 2)
    out["peak_rss_mb"] = round(peak_rss_mb(), 0)
    val = meta.get("validation") or {}
    out["training_seconds_recorded_in_model"] = val.get("train_seconds")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
