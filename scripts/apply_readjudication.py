#!/usr/bin/env python3
"""Apply a second adjudication (a re-reading of final records under new coding notes) to a final file.

The adjudicator's file (``{passage_id, labels, subcodes, note}`` per passage read, checked with
``policyclf data import``'s checks) replaces the final record of every passage whose label set or
sub-codes it changed (coder ``adjudicated``, the round kept, the note prefixed with NAME); a record
it kept stays the coder's. Every passage read is logged, before and after, in
``data/annotated/rounds/NAME.readjudicated.jsonl`` (ids and labels only, no text).

Usage: scripts/apply_readjudication.py ADJUDICATOR_OUT.jsonl --set extension --name xr1-xn1
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from policyclf.annotation_tools import import_records  # noqa: E402
from policyclf.corpus import CODING_SETS, annotations_dir, load_passages, read_jsonl  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("adjudicated", type=Path)
    ap.add_argument("--set", dest="coding_set", choices=list(CODING_SETS), required=True)
    ap.add_argument("--name", required=True, help="name of this re-reading (log file name, note prefix)")
    ap.add_argument("--corpus")
    args = ap.parse_args()
    passages = load_passages(args.corpus)
    adir = annotations_dir()
    final_path = adir / CODING_SETS[args.coding_set][1]
    final = [rec for _, rec in read_jsonl(final_path)]
    by_id = {r["passage_id"]: k for k, r in enumerate(final)}
    read = import_records(args.adjudicated, "jsonl", "adjudicated", passages)
    missing = [r["passage_id"] for r in read if r["passage_id"] not in by_id]
    if missing:
        sys.exit(f"{len(missing)} re-read passages have no final record in {final_path.name}, e.g. {missing[0]}")
    log, changed = [], 0
    for r in read:
        k = by_id[r["passage_id"]]
        before = final[k]
        same = set(before["labels"]) == set(r["labels"]) and set(before.get("subcodes", [])) == set(r["subcodes"])
        log.append({"passage_id": r["passage_id"], "round": before.get("round", ""), "kept": same,
                    "before": {"labels": before["labels"], "subcodes": before.get("subcodes", []),
                               "coder": before.get("coder", "")},
                    "after": {"labels": r["labels"], "subcodes": r["subcodes"]}, "note": r["note"]})
        if not same:
            changed += 1
            final[k] = {**r, "note": f"{args.name}: {r['note']}"[:200], "round": before.get("round", "")}
    final_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in final), encoding="utf-8")
    (adir / "rounds").mkdir(exist_ok=True)
    (adir / "rounds" / f"{args.name}.readjudicated.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in log), encoding="utf-8")
    print(f"{args.name}: {len(read)} passages re-read, {changed} changed, {len(read) - changed} kept → {final_path}")


if __name__ == "__main__":
    main()
