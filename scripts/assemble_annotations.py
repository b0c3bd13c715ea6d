#!/usr/bin/env python3
"""Assemble the standoff annotation files from a coding workspace (kept outside the repository).

Workspace layout (see data/annotated/README.md for the process):
  sets.json                      passage ids of the calibration, double, single and other sets
  misscheck_ids.json             single-coded passages left unlabelled that got a second read
  coders/<C>/out/*.jsonl         each coder's records ({passage_id, labels, subcodes, note})
  adjud/in/*.jsonl               what the adjudicators were shown

Coders C1 and H1–H4 are coder "A", C2 and H5–H8 coder "B"; R1–R6 made the second reads;
J1 adjudicated double-coding disagreements, J2 the second-read disagreements.
Usage: scripts/assemble_annotations.py WORKSPACE [--corpus DIR]
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from policyclf.corpus import load_passages, text_sha1  # noqa: E402
from policyclf.labels import CATEGORIES  # noqa: E402

LETTER = {"C1": "A", "C2": "B", **{f"H{i}": "A" for i in range(1, 5)}, **{f"H{i}": "B" for i in range(5, 9)}}


def load(ws: Path, coder: str, pattern: str = "*.jsonl") -> dict[str, dict]:
    out = {}
    for f in sorted(glob.glob(str(ws / "coders" / coder / "out" / pattern))):
        for line in open(f, encoding="utf-8"):
            if line.strip():
                r = json.loads(line)
                out[r["passage_id"]] = r
    return out


def record(pid: str, rec: dict, coder: str, passages) -> dict:
    labels = sorted(set(rec["labels"]), key=CATEGORIES.index)
    return {"passage_id": pid, "text_sha1": text_sha1(passages[pid].text), "labels": labels,
            "subcodes": list(dict.fromkeys(rec.get("subcodes", []))), "coder": coder,
            "note": rec.get("note", "")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--corpus")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "data" / "annotated")
    args = ap.parse_args()
    ws = args.workspace
    passages = load_passages(args.corpus)
    sets = json.loads((ws / "sets.json").read_text())
    first: dict[str, list[tuple[str, dict]]] = {}
    for coder, letter in LETTER.items():
        for pid, r in load(ws, coder).items():
            first.setdefault(pid, []).append((letter, r))
    j1 = load(ws, "J1", "adj-*.jsonl")
    j2 = load(ws, "J2", "miss-adj-*.jsonl")
    review = {}
    for k in range(1, 7):
        review.update(load(ws, f"R{k}"))
    final, double = {}, []
    for pid in sets["double"]:
        by = dict(first[pid])
        a, b = by["A"], by["B"]
        double += [record(pid, a, "A", passages), record(pid, b, "B", passages)]
        if set(a["labels"]) == set(b["labels"]):
            final[pid] = record(pid, a, "A", passages)
        else:
            final[pid] = record(pid, j1[pid], "adjudicated", passages)
    for pid in sets["single"] + sets["other"]:
        (letter, rec), = first[pid]
        if pid in review and review[pid]["labels"]:
            final[pid] = record(pid, j2[pid], "adjudicated", passages)
        else:
            final[pid] = record(pid, rec, letter, passages)
    args.out.mkdir(parents=True, exist_ok=True)
    other = set(sets["other"])

    def write(name: str, rows: list[dict]) -> None:
        with open(args.out / name, "w", encoding="utf-8") as f:
            for r in sorted(rows, key=lambda r: (r["passage_id"], r["coder"])):
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
        print(f"{name}: {len(rows)} records")

    write("six_regions.jsonl", [r for p, r in final.items() if p not in other])
    write("other_provinces_test.jsonl", [r for p, r in final.items() if p in other])
    write("double_coded.jsonl", double)


if __name__ == "__main__":
    main()
