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
from policyclf.corpus import EXTENSION_SOURCES, annotations_dir, extension_source, load_passages, read_annotations  # noqa: E402
from policyclf.labels import CATEGORIES  # noqa: E402

SETS = [("six_regions (v1)", "six_regions.jsonl"), ("six_regions_pool (v2 + r5)", "six_regions_pool.jsonl"),
        ("extension_pool (v3)", "extension_pool.jsonl")]
HEAD = ("| {first} | passages | 1 institutional | 2 government | 3 social org. | 4 service mech. | 5 investment "
        "| 6 talent | 7 platforms | none |\n|---|---|---|---|---|---|---|---|---|---|")


def row(name: str, recs: list, bold: bool = False) -> str:
    counts = [sum(c in r.labels for r in recs) for c in CATEGORIES]
    none = sum(not r.labels for r in recs)
    cells = [f"{len(recs):,}", *(f"{n:,}" for n in counts), f"{none:,}"]
    return f"| {f'**{name}**' if bold else name} | " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--corpus")
    args = ap.parse_args()
    passages = load_passages(args.corpus)

    def final(file: str) -> list:
        """The validated final records of ``file`` (the checks training applies); none if it does not exist."""
        path = annotations_dir() / file
        return read_annotations(path, passages, final=True) if path.is_file() else []

    files = {name: final(f) for name, f in SETS}

    print("### Labels per round (final)")
    print(HEAD.format(first="round"))
    by_round: dict[str, list] = collections.defaultdict(list)
    for name in ("six_regions_pool (v2 + r5)", "extension_pool (v3)"):
        for r in files[name]:
            by_round[r.round or "?"].append(r)
    for rnd in sorted(by_round):
        print(row(rnd, by_round[rnd]))

    print("\n### Extension pool by source")
    print(HEAD.format(first="source"))
    by_source: dict[str, list] = collections.defaultdict(list)
    for r in files["extension_pool (v3)"]:
        by_source[extension_source(passages[r.passage_id])].append(r)
    for src in EXTENSION_SOURCES:
        print(row(src, by_source[src]))

    print("\n### Gold data for training")
    print(HEAD.format(first="set"))
    for name, recs in files.items():
        print(row(name, recs))
    print(row("all training gold", [r for recs in files.values() for r in recs], bold=True))
    print(row("other_provinces_test (unseen test, never trained on)", final("other_provinces_test.jsonl")))


if __name__ == "__main__":
    main()
