#!/usr/bin/env python3
"""Lay out a blind second reading of already-coded passages, to measure how far a coding has drifted.

A stratified random sample of one annotation file's passages (``--with N`` that carry ``--label`` in
their final record, ``--without M`` that do not), optionally one document type, is put back in corpus
order (so neither the stratum nor the label is visible from the order) and cut into two halves. Each
half goes to two coders (A1/B1, A2/B2): every passage is read twice, independently, from the codebook
and the coding notes. Coders see the same fields as in any coding round (``make_coding_round.py``):
never the existing record, never a model score. ``sets.json`` records the sample and the seed; 

Usage:
  scripts/make_reread_sample.py WORKSPACE/gf1 --annotations data/annotated/six_regions.jsonl \
      --label government_functions --doc-type regulation --with 100 --without 140 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from policyclf.corpus import load_documents, load_passages, read_jsonl  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_coding_round import write_coder  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("round_dir", type=Path)
    ap.add_argument("--annotations", type=Path, required=True)
    ap.add_argument("--label", required=True)
    ap.add_argument("--doc-type")
    ap.add_argument("--with", dest="n_with", type=int, required=True)
    ap.add_argument("--without", dest="n_without", type=int, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus")
    args = ap.parse_args()
    rd: Path = args.round_dir
    if (rd / "sets.json").exists():
        sys.exit(f"{rd}/sets.json exists: a sample is laid out once")
    passages = load_passages(args.corpus)
    documents = load_documents(args.corpus)
    pos, neg = [], []
    for _, rec in read_jsonl(args.annotations):
        pid = rec["passage_id"]
        if pid not in passages or (args.doc_type and passages[pid].doc_type != args.doc_type):
            continue
        (pos if args.label in rec.get("labels", []) else neg).append(pid)
    if len(pos) < args.n_with or len(neg) < args.n_without:
        sys.exit(f"only {len(pos)} passages with and {len(neg)} without {args.label}")
    rng = random.Random(f"{rd.name}-{args.seed}")
    chosen = set(rng.sample(sorted(pos), args.n_with)) | set(rng.sample(sorted(neg), args.n_without))
    order = {pid: i for i, pid in enumerate(passages)}
    ids = sorted(chosen, key=order.__getitem__)
    half = len(ids) // 2
    halves = [ids[:half], ids[half:]]
    for k, batch in enumerate(halves, 1):
        write_coder(rd / f"A{k}", batch, passages, documents)
        write_coder(rd / f"B{k}", batch, passages, documents)
    (rd / "sets.json").write_text(json.dumps({
        "kind": "reread", "annotations": str(args.annotations), "label": args.label, "doc_type": args.doc_type,
        "seed": args.seed, "with": args.n_with, "without": args.n_without, "passages": ids,
        "strata": {pid: "with" if pid in set(pos) else "without" for pid in ids},
        "population": {"with": len(pos), "without": len(neg)}, "double": ids}, indent=0))
    print(f"{rd.name}: {len(ids)} passages ({args.n_with} with, {args.n_without} without {args.label}), "
          f"halves of {len(halves[0])} and {len(halves[1])}, each read by two coders")


if __name__ == "__main__":
    main()
