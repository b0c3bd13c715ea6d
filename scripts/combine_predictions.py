#!/usr/bin/env python3
"""Saved split predictions of two or more models combined as the ``ensemble`` backend combines them
(threshold-centred logits averaged, threshold 0.5; ``policyclf.models.ensemble``), split by split, for
ensembles a report does not hold (e.g. a student with TF-IDF, or predictions of an earlier run).

Only the splits every member has are written; a split whose members scored different passages is an error.

Usage:
  scripts/combine_predictions.py reports/v3/predictions/distilled reports/v3/predictions/tfidf \
      -o /work/runs/ens-distilled-tfidf [--weights 1 1] [--splits loro-beijing loro-guangdong]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyclf.models.ensemble import combine_prediction_rows  # noqa: E402
from policyclf.protocol import read_predictions  # noqa: E402


def combine_dirs(members: list[Path], out: Path, weights: list[float] | None = None,
                 splits: list[str] | None = None) -> list[str]:
    """Write ``out/SPLIT.jsonl`` for every split all ``members`` have; returns the splits written."""
    names = sorted(p.stem for p in members[0].glob("*.jsonl")
                   if all((m / p.name).is_file() for m in members[1:]) and (not splits or p.stem in splits))
    out.mkdir(parents=True, exist_ok=True)
    for split in names:
        rows = combine_prediction_rows([read_predictions(m / f"{split}.jsonl") for m in members], weights)
        with (out / f"{split}.jsonl").open("w", encoding="utf-8") as f:
            for pid, r in rows.items():
                f.write(json.dumps({"passage_id": pid, "split": split, "train_seconds": r["train_seconds"],
                                    "members": [str(m) for m in members],
                                    "scores": [round(float(s), 5) for s in r["scores"]],
                                    "thresholds": [0.5] * len(r["scores"])}) + "\n")
    return names


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("members", nargs="+", type=Path, help="prediction folders (SPLIT.jsonl files), two or more")
    ap.add_argument("-o", "--output", type=Path, required=True)
    ap.add_argument("--weights", nargs="+", type=float, default=None)
    ap.add_argument("--splits", nargs="+", default=None)
    args = ap.parse_args()
    if len(args.members) < 2:
        sys.exit("error: two or more prediction folders")
    written = combine_dirs(args.members, args.output, args.weights, args.splits)
    if not written:
        sys.exit("error: no split is in every member folder")
    print(f"{len(written)} split(s) written to {args.output}: {', '.join(written)}")


if __name__ == "__main__":
    main()
