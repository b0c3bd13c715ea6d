#!/usr/bin/env python3
"""Is ONNX Runtime worth a runtime path? Exports the shipped BERT model (encoder + pooling + head) to
ONNX, quantizes a copy to int8 (per channel, dynamic), and times torch float32, ORT float32 and ORT
int8 on the same length-sorted windows of corpus passages, with the largest logit difference to torch.

Usage: python benchmarks/bench_onnx.py [--model models/policyclf-distilled] [--n 256] [--batch 0]
Needs `pip install onnxruntime onnx`. Prints the CPU, its flags and one JSON summary.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="models/policyclf-distilled")
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--batch", type=int, default=0, help="windows per batch (0: the model's token-budget batches)")
    args = ap.parse_args()
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from policyclf.corpus import load_passages
    from policyclf.hardware import describe_cpu, isa_limits
    from policyclf.models.base import load_model
    from policyclf.models.bert import _run_layers

    model = load_model(args.model, inference_dtype="float32", device="cpu")
    model = getattr(model, "student_", model)  # a distilled model scores with its student
    passages = list(load_passages().values())
    rng = np.random.default_rng(0)
    texts = [passages[i].text for i in rng.choice(len(passages), args.n, replace=False)]
    windows, _ = model._windows(texts)
    order = np.argsort([len(w) for w in windows])
    if args.batch:
        groups = [order[s:s + args.batch] for s in range(0, len(order), args.batch)]
    else:  # the model's own inference batches (token budget), as predict uses them
        groups = model._inference_batches(order, windows)
    batches = [model._pad([windows[i] for i in idx]) for idx in groups]

    class Scorer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.enc, self.head = model.encoder_, model.head_

        def forward(self, ids, mask):
            h = _run_layers(self.enc, self.enc.encoder.layer, self.enc.embeddings(input_ids=ids), mask)
            m = mask.unsqueeze(-1).to(h.dtype)
            return self.head((h * m).sum(1) / m.sum(1).clamp(min=1))

    scorer = Scorer().eval()
    out = {"cpu": describe_cpu(), "isa_limits": isa_limits(), "torch_threads": torch.get_num_threads(),
           "model": args.model, "runtime": model.runtime_info()["runtime"], "windows": len(windows),
           "note": "ONNX Runtime picks its kernels by CPUID: isa_limits hold torch only"}
    with torch.inference_mode():
        started = time.perf_counter()
        ref = [scorer(ids, mask).numpy() for ids, mask in batches]
        out["torch_float32_windows_per_s"] = round(len(windows) / (time.perf_counter() - started), 1)
    tmp = Path(tempfile.mkdtemp())
    ids, mask = batches[0]
    torch.onnx.export(scorer, (ids, mask), str(tmp / "m.onnx"), input_names=["ids", "mask"], output_names=["logits"],
                      dynamic_axes={"ids": {0: "b", 1: "t"}, "mask": {0: "b", 1: "t"}, "logits": {0: "b"}},
                      opset_version=17, dynamo=False)
    quantize_dynamic(str(tmp / "m.onnx"), str(tmp / "m8.onnx"), weight_type=QuantType.QInt8, per_channel=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = torch.get_num_threads()
    for name, path in (("ort_float32", tmp / "m.onnx"), ("ort_int8", tmp / "m8.onnx")):
        started = time.perf_counter()
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        out[f"{name}_session_s"] = round(time.perf_counter() - started, 2)
        started = time.perf_counter()
        got = [sess.run(None, {"ids": i.numpy(), "mask": m.numpy()})[0] for i, m in batches]
        out[f"{name}_windows_per_s"] = round(len(windows) / (time.perf_counter() - started), 1)
        out[f"{name}_max_logit_diff_vs_torch"] = round(float(max(np.abs(a - b).max() for a, b in zip(got, ref))), 6)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
