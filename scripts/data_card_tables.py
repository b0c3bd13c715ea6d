#!/usr/bin/env python3
"""Print the count tables of the data card (data/annotated/README.md) from the final annotation files.

Tables: labels per coding round, the extension pool by source, and the gold data for training per set.
Counts only: no text is printed. Paste the output into the card after a round changes the records.

Usage: scripts/data_card_tables.py [--corpus DIR]
"""

from __future__ import annotations

import argparse
import collections
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from policyclf.corpus import annotations_dir, load_passages, read_jsonl  # noqa: E402
from policyclf.labels import CATEGORIES  # noqa: E402

SETS = [("six_regions (v1)", "six_regions.jsonl"), ("six_regions_pool (v2 + r5)", "six_regions_pool.jsonl"),
        ("extension_pool (v3)", "extension_pool.jsonl")]
HEAD = ("| {first} | passages | 1 institutional | 2 government | 3 social org. | 4 service mech. | 5 investment "
        "| 6 talent | 7 platforms | none |\n|---|---|---|---|---|---|---|---|---|---|")


def row(name: str, recs: list[dict], bold: bool = False) -> str:
    counts = [sum(c in r.get("labels", []) for r in recs) for c in CATEGORIES]
    none = sum(not r.get("labels") for r in recs)
    cells = [f"{len(recs):,}", *(f"{n:,}" for n in counts), f"{none:,}"]
    if bold:
        return f"| **{name}** | " + " | ".join(cells) + " |"
    return f"| {name} | " + " | ".join(cells) + " |"


def source_of(pid: str, passages) -> str:
    p = passages[pid]
    national = p.region == "national"
    if p.doc_type == "regulation":
        return "national_laws" if national else "provincial_laws"
    return "state_council_reports" if national else "provincial_work_reports"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus")
    args = ap.parse_args()
    passages = load_passages(args.corpus)
    files = {name: [rec for _, rec in read_jsonl(annotations_dir() / f)] if (annotations_dir() / f).is_file() else []
             for name, f in SETS}

    print("### Labels per round (final)")
    print(HEAD.format(first="round"))
    by_round: dict[str, list[dict]] = collections.defaultdict(list)
    for name in ("six_regions_pool (v2 + r5)", "extension_pool (v3)"):
        for r in files[name]:
            by_round[r.get("round") or "?"].append(r)
    for rnd in sorted(by_round):
        print(row(rnd, by_round[rnd]))

    print("\n### Extension pool by source")
    print(HEAD.format(first="source"))
    by_source: dict[str, list[dict]] = collections.defaultdict(list)
    for r in files["extension_pool (v3)"]:
        by_source[source_of(r["passage_id"], passages)].append(r)
    for src in ("provincial_laws", "national_laws", "provincial_work_reports", "state_council_reports"):
        print(row(src, by_source[src]))

    print("\n### Gold data for training")
    print(HEAD.format(first="set"))
    for name, recs in files.items():
        print(row(name, recs))
    print(row("all training gold", [r for recs in files.values() for r in recs], bold=True))
    test_file = annotations_dir() / "other_provinces_test.jsonl"
    test = [rec for _, rec in read_jsonl(test_file)] if test_file.is_file() else []
    print(row("other_provinces_test (unseen test, never trained on)", test))


if __name__ == "__main__":
    main()
