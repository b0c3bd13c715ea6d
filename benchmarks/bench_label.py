#!/usr/bin/env python3
"""`policyclf label` throughput: builds a folder of N documents from the corpus at benchmark time
(outside the repository, in a temporary folder), labels it with each model, and reports
documents/s, passages/s and peak memory (this process and its worker processes).

Usage: python benchmarks/bench_label.py [--docs 1000] [--workers 2] [--models models/policyclf-tfidf models/policyclf-bert]
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import tempfile
import time
from pathlib import Path


def build_folder(folder: Path, n_docs: int) -> int:
    """N documents of 2–12 consecutive corpus passages each, as .txt (some GBK) and .md files."""
    from policyclf.corpus import load_passages

    passages = list(load_passages().values())
    made, i = 0, 0
    while made < n_docs:
        size = 2 + made % 11
        chunk = passages[i:i + size] if i + size <= len(passages) else passages[:size]
        i = (i + size) % len(passages)
        text = "\n".join(p.text for p in chunk) + "\n"
        sub = folder / f"part{made % 10}"
        sub.mkdir(parents=True, exist_ok=True)
        if made % 5 == 0:
            (sub / f"doc{made:05d}.txt").write_bytes(text.encode("gb18030"))
        else:
            (sub / f"doc{made:05d}.{'md' if made % 5 == 1 else 'txt'}").write_text(text, encoding="utf-8")
        made += 1
    return made


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=256, help="passages per model call (policyclf label's default)")
    ap.add_argument("--models", nargs="+", default=["models/policyclf-tfidf", "models/policyclf-bert"])
    args = ap.parse_args()
    from policyclf.batch import label_folder

    tmp = Path(tempfile.mkdtemp(prefix="policyclf-bench-"))
    try:
        build_folder(tmp / "docs", args.docs)
        results = []
        for model in args.models:
            started = time.perf_counter()
            res = label_folder(tmp / "docs", tmp / f"out-{Path(model).name}", model, workers=args.workers,
                               batch_size=args.batch_size, progress=False)
            seconds = time.perf_counter() - started
            run = json.loads((tmp / f"out-{Path(model).name}" / ".work" / "run.json").read_text())
            results.append({"model": model, "runtime": run.get("runtime"), "documents": res.documents,
                            "passages": res.passages,
                            "errors": res.errors, "seconds": round(seconds, 1),
                            "documents_per_s": round(res.documents / seconds, 1),
                            "passages_per_s": round(res.passages / seconds, 1)})
        peak = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
        from policyclf.hardware import describe_cpu

        print(json.dumps({"cpu": describe_cpu(), "workers": args.workers, "runs": results, "peak_rss_mb_max_process": round(peak / 1024)}, indent=2))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
