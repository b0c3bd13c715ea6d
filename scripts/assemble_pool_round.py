#!/usr/bin/env python3
"""Assemble one coding round of a pool from a coding workspace (kept outside the repo).

Workspace layout for round NAME (made by scripts/make_coding_round.py):
  NAME/sets.json            {"passages": [...], "double": [...]}: the round and its 20 % overlap
  NAME/A*/out.jsonl         single coders' records ({passage_id, labels, subcodes, note})
  NAME/B*/out.jsonl         the second coders' records on the overlap
  NAME/J1/out.jsonl         the adjudicator's records for the disagreements (after step 1)

Step 1 (`--prepare-adjudication`): checks every coder file with `policyclf data import`'s checks,
and writes NAME/J1/in.jsonl: the passages whose label sets differ, with the two codings in random
order as "coding 1" / "coding 2" (blind to which coder made which).
Step 2 (default): writes the round's final records into the set's final file (`--set pool`:
data/annotated/six_regions_pool.jsonl, `--set extension`: extension_pool.jsonl; replacing that
round's earlier records), both coders' overlap records into its double-coded file, and the picks
log (if the round was picked by `data suggest`) into data/annotated/rounds/NAME.picks.jsonl.

Usage: scripts/assemble_pool_round.py WORKSPACE/NAME [--set pool|extension] [--picks PICKS_LOG] [--prepare-adjudication]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from policyclf.annotation_tools import import_records  # noqa: E402
from policyclf.corpus import CODING_SETS, annotations_dir, load_passages, read_jsonl  # noqa: E402


def coder_records(path: Path, letter: str, passages) -> dict[str, dict]:
    return {r["passage_id"]: r for r in import_records(path, "jsonl", letter, passages)}


def rewrite(path: Path, keep, new: list[dict]) -> None:
    old = [rec for _, rec in read_jsonl(path)] if path.exists() else []
    rows = [r for r in old if keep(r)] + new
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("round_dir", type=Path)
    ap.add_argument("--set", dest="coding_set", choices=["pool", "extension"], default="pool")
    ap.add_argument("--picks", type=Path, help="the data suggest picks log of an actively picked round")
    ap.add_argument("--prepare-adjudication", action="store_true")
    ap.add_argument("--corpus")
    args = ap.parse_args()
    rd, name = args.round_dir, args.round_dir.name
    passages = load_passages(args.corpus)
    sets = json.loads((rd / "sets.json").read_text())
    single: dict[str, dict] = {}
    for d in sorted(rd.glob("A*")):
        single.update(coder_records(d / "out.jsonl", "A", passages))
    second: dict[str, dict] = {}
    for d in sorted(rd.glob("B*")):
        second.update(coder_records(d / "out.jsonl", "B", passages))
    missing = [p for p in sets["passages"] if p not in single]
    if missing or set(second) != set(sets["double"]):
        sys.exit(f"{name}: {len(missing)} passages without a single coding, "
                 f"{len(set(sets['double']) ^ set(second))} overlap passages not matching the B coders' files")
    disagree = [p for p in sets["double"] if set(single[p]["labels"]) != set(second[p]["labels"])]
    if args.prepare_adjudication:
        rng = random.Random(name)
        (rd / "J1" / "scratch").mkdir(parents=True, exist_ok=True)
        with (rd / "J1" / "in.jsonl").open("w", encoding="utf-8") as f:
            for pid in disagree:
                p = passages[pid]
                pair = [single[pid], second[pid]]
                rng.shuffle(pair)
                f.write(json.dumps({"passage_id": pid, "heading": p.heading, "text": p.text,
                                    **{f"coding_{k + 1}": {"labels": c["labels"], "subcodes": c["subcodes"],
                                                           "note": c["note"]} for k, c in enumerate(pair)}},
                                   ensure_ascii=False) + "\n")
        (rd / "J1" / "out.jsonl").touch()
        print(f"{name}: {len(sets['double'])} double-coded, {len(disagree)} disagreements → {rd / 'J1' / 'in.jsonl'}")
        return
    adjudicated = coder_records(rd / "J1" / "out.jsonl", "adjudicated", passages) if disagree else {}
    if set(adjudicated) != set(disagree):
        sys.exit(f"{name}: the adjudicator's file does not cover exactly the {len(disagree)} disagreements")
    final = []
    for pid in sets["passages"]:
        rec = adjudicated.get(pid) or single[pid]
        final.append({**rec, "round": name})
    double = [{**single[p], "round": name} for p in sets["double"]] + [{**second[p], "round": name} for p in sets["double"]]
    adir = annotations_dir()
    double_name, final_name, _ = CODING_SETS[args.coding_set]
    rewrite(adir / final_name, lambda r: r.get("round") != name, final)
    rewrite(adir / double_name, lambda r: r.get("round") != name, double)
    if args.picks:
        (adir / "rounds").mkdir(exist_ok=True)
        (adir / "rounds" / f"{name}.picks.jsonl").write_text(args.picks.read_text(encoding="utf-8"), encoding="utf-8")
    labelled = sum(1 for r in final if r["labels"])
    print(f"{name}: {len(final)} final records ({labelled} with labels), {len(disagree)} adjudicated, "
          f"{len(sets['double'])} double-coded")


if __name__ == "__main__":
    main()
