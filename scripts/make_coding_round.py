#!/usr/bin/env python3
"""Lay out one coding round in a workspace outside the repository (coders' input files hold corpus text).

A round is a set of passages (every passage of a pool slice, or the ids picked by ``data suggest``)
cut into contiguous batches for single coders (A1, A2, …; a law's articles stay together and in
order), plus a seeded random ``--double`` share (rounded up) for second coders (B1, …). Every coder
gets its own folder: ``in.jsonl`` (passage id, document title, region, document type, heading,
text — never a model score), an empty ``out.jsonl`` and a ``scratch/`` folder. ``sets.json`` records
the round and its overlap; ``scripts/assemble_pool_round.py`` builds the final records from it.

Usage:
  scripts/make_coding_round.py WORKSPACE/NAME --pool extension_pool --doc-type regulation \
      --regions-not national --per-coder 140 [--double 0.2] [--ids PICKS.jsonl]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from policyclf.corpus import annotations_dir, load_documents, load_passages, read_jsonl  # noqa: E402


def coded_ids() -> set[str]:
    out: set[str] = set()
    for path in annotations_dir().glob("*.jsonl"):
        out.update(rec["passage_id"] for _, rec in read_jsonl(path))
    return out


def split_contiguous(ids: list[str], doc_of: dict[str, str], size: int) -> list[list[str]]:
    """Cut ``ids`` (in corpus order) into about len/size batches, preferring cuts at document ends."""
    n_batches = max(1, round(len(ids) / size))
    target = len(ids) / n_batches
    batches: list[list[str]] = [[]]
    for i, pid in enumerate(ids):
        cur = batches[-1]
        boundary = i > 0 and doc_of[pid] != doc_of[ids[i - 1]]
        over = len(cur) >= target * 1.25 or (boundary and len(cur) >= target * 0.8)
        if cur and over and len(batches) < n_batches:
            batches.append([])
        batches[-1].append(pid)
    return batches


def write_coder(folder: Path, ids: list[str], passages, documents, extra=None) -> None:
    """A coder's folder: in.jsonl (``extra(pid)`` adds fields to a passage's line), an empty out.jsonl, scratch/."""
    (folder / "scratch").mkdir(parents=True, exist_ok=True)
    with (folder / "in.jsonl").open("w", encoding="utf-8") as f:
        for pid in ids:
            p = passages[pid]
            f.write(json.dumps({"passage_id": pid, "title": documents[p.doc_id]["title"], "region": p.region,
                                "doc_type": p.doc_type, "seq": p.seq, "heading": p.heading, "text": p.text,
                                **(extra(pid) if extra else {})}, ensure_ascii=False) + "\n")
    (folder / "out.jsonl").touch()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("round_dir", type=Path)
    ap.add_argument("--pool", required=True)
    ap.add_argument("--doc-type")
    ap.add_argument("--regions", nargs="*", help="only these regions")
    ap.add_argument("--regions-not", nargs="*", help="not these regions")
    ap.add_argument("--ids", type=Path, help="a data suggest output (passage_id per line): code exactly these")
    ap.add_argument("--per-coder", type=int, default=140)
    ap.add_argument("--double", type=float, default=0.2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--corpus")
    args = ap.parse_args()
    rd: Path = args.round_dir
    if (rd / "sets.json").exists():
        sys.exit(f"{rd}/sets.json exists: a round is laid out once")
    passages = load_passages(args.corpus)
    documents = load_documents(args.corpus)
    done = coded_ids()
    if args.ids:
        wanted = {rec["passage_id"] for _, rec in read_jsonl(args.ids)}
        ids = [pid for pid in passages if pid in wanted]
    else:
        ids = [pid for pid, p in passages.items() if p.pool == args.pool and pid not in done
               and (not args.doc_type or p.doc_type == args.doc_type)
               and (not args.regions or p.region in args.regions)
               and (not args.regions_not or p.region not in args.regions_not)]
    clash = [pid for pid in ids if pid in done or passages[pid].pool != args.pool]
    if clash:
        sys.exit(f"{len(clash)} passages already coded or outside {args.pool}, e.g. {clash[:3]}")
    doc_of = {pid: passages[pid].doc_id for pid in ids}
    rng = random.Random(f"{rd.name}-{args.seed}")
    double = set(rng.sample(ids, math.ceil(len(ids) * args.double)))
    double_ids = [pid for pid in ids if pid in double]
    a_batches = split_contiguous(ids, doc_of, args.per_coder)
    b_batches = split_contiguous(double_ids, doc_of, args.per_coder)
    for k, batch in enumerate(a_batches, 1):
        write_coder(rd / f"A{k}", batch, passages, documents)
    for k, batch in enumerate(b_batches, 1):
        write_coder(rd / f"B{k}", batch, passages, documents)
    (rd / "sets.json").write_text(json.dumps({"pool": args.pool, "passages": ids, "double": double_ids}, indent=0))
    print(f"{rd.name}: {len(ids)} passages in {len(a_batches)} single batches "
          f"({', '.join(str(len(b)) for b in a_batches)}); {len(double_ids)} double-coded in "
          f"{len(b_batches)} second batches ({', '.join(str(len(b)) for b in b_batches)})")


if __name__ == "__main__":
    main()
