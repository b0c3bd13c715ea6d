#!/usr/bin/env python3
"""Compare a blind second reading (``make_reread_sample.py``) with the final records it re-read.

For each category: how often the two re-readers agree with each other (Cohen's kappa), and how the
re-reading compares with the final record, separately in the two strata of the sampled label
(records with and without it). A passage's re-reading is "consensus" where both re-readers agree on
the category; disagreements between them are counted apart, never resolved by this script. The
stratum rates are weighted back to the population (the stratum sizes of the annotation file) to
estimate how many records the second reading would change, with a Wilson 95 % interval per stratum.

Usage:
  scripts/reread_compare.py WORKSPACE/gf1 [--json OUT.json] [--md OUT.md]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from policyclf.corpus import load_passages, read_jsonl  # noqa: E402
from policyclf.labels import CATEGORIES  # noqa: E402


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def kappa(a: list[bool], b: list[bool]) -> float:
    n = len(a)
    if n == 0:
        return float("nan")
    po = sum(x == y for x, y in zip(a, b)) / n
    pa, pb = sum(a) / n, sum(b) / n
    pe = pa * pb + (1 - pa) * (1 - pb)
    return float("nan") if pe == 1 else (po - pe) / (1 - pe)


def read_outs(rd: Path) -> dict[str, list[set[str]]]:
    """passage_id -> the label sets of its re-readers (A* and B* folders)."""
    got: dict[str, list[set[str]]] = {}
    for folder in sorted(p for p in rd.iterdir() if p.is_dir() and p.name[:1] in "AB"):
        for _, rec in read_jsonl(folder / "out.jsonl"):
            got.setdefault(rec["passage_id"], []).append(set(rec.get("labels", [])))
    return got


def compare(rd: Path, corpus: str | None = None, annotations: Path | None = None) -> dict:
    """``annotations``: compare with this file instead of the one the sample was drawn from (e.g. a later version)."""
    sets = json.loads((rd / "sets.json").read_text())
    label = sets["label"]
    ann = Path(annotations or sets["annotations"])
    if not ann.is_absolute():
        ann = Path(__file__).resolve().parents[1] / ann
    passages = load_passages(corpus)
    final = {}
    population = {True: 0, False: 0}
    for _, rec in read_jsonl(ann):
        pid = rec["passage_id"]
        final[pid] = set(rec.get("labels", []))
        if pid in passages and (not sets.get("doc_type") or passages[pid].doc_type == sets["doc_type"]):
            population[label in final[pid]] += 1
    outs = read_outs(rd)
    both = [pid for pid in sets["passages"] if len(outs.get(pid, [])) == 2]
    out: dict = {"sample": rd.name, "annotations": sets["annotations"], "label": label, "doc_type": sets.get("doc_type"),
                 "sampled": len(sets["passages"]), "read_twice": len(both),
                 "population": {"with": population[True], "without": population[False]}, "categories": {}}
    for cat in CATEGORIES:
        r1 = [cat in outs[pid][0] for pid in both]
        r2 = [cat in outs[pid][1] for pid in both]
        fin = [cat in final[pid] for pid in both]
        row = {"rereaders_kappa": round(kappa(r1, r2), 3),
               "rereader_vs_final_kappa": round((kappa(r1, fin) + kappa(r2, fin)) / 2, 3),
               "final_positives": sum(fin),
               "rereader_positives_mean": (sum(r1) + sum(r2)) / 2}
        strata = {}
        for name, has in (("with", True), ("without", False)):
            idx = [i for i, pid in enumerate(both) if (label in final[pid]) == has]
            agree = [i for i in idx if r1[i] == r2[i]]
            flips = [i for i in agree if r1[i] != fin[i]]
            lo, hi = wilson(len(flips), len(agree))
            strata[name] = {"passages": len(idx), "rereaders_agree": len(agree),
                            "consensus_differs_from_final": len(flips),
                            "rate": round(len(flips) / len(agree), 3) if agree else None,
                            "rate_ci95": [round(lo, 3), round(hi, 3)],
                            "rereaders_split": len(idx) - len(agree)}
        row["strata"] = strata
        if cat == label:
            est = {name: strata[name]["rate"] * population[name == "with"] if strata[name]["rate"] is not None else None
                   for name in ("with", "without")}
            row["estimated_changes_in_population"] = {
                "removed_from_with": round(est["with"]) if est["with"] is not None else None,
                "added_to_without": round(est["without"]) if est["without"] is not None else None}
        out["categories"][cat] = row
    return out


def to_markdown(res: dict) -> str:
    lab = res["label"]
    lines = [f"# Blind second reading `{res['sample']}`: {res['read_twice']} of {res['sampled']} sampled "
             f"{res['doc_type'] or ''} passages of `{res['annotations']}` read by two coders",
             "", f"Strata by the final record's `{lab}`: population {res['population']['with']} with, "
             f"{res['population']['without']} without.", "",
             "| category | κ re-readers | κ re-reader–final | final + | re-read + (mean) | with: consensus ≠ final "
             "| without: consensus ≠ final |", "|---|---|---|---|---|---|---|"]
    for cat, r in res["categories"].items():
        s = r["strata"]
        cell = {k: f"{s[k]['consensus_differs_from_final']}/{s[k]['rereaders_agree']} "
                   f"[{s[k]['rate_ci95'][0]:.2f}, {s[k]['rate_ci95'][1]:.2f}] (split {s[k]['rereaders_split']})"
                for k in ("with", "without")}
        lines.append(f"| {cat} | {r['rereaders_kappa']:.3f} | {r['rereader_vs_final_kappa']:.3f} | {r['final_positives']} "
                     f"| {r['rereader_positives_mean']:.1f} | {cell['with']} | {cell['without']} |")
    est = res["categories"][lab].get("estimated_changes_in_population", {})
    lines += ["", f"Weighted to the population, a consensus re-reading would remove `{lab}` from about "
              f"{est.get('removed_from_with')} records and add it to about {est.get('added_to_without')}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("round_dir", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--corpus")
    ap.add_argument("--annotations", type=Path, help="compare with this version of the records (default: the sampled file)")
    args = ap.parse_args()
    res = compare(args.round_dir, args.corpus, args.annotations)
    md = to_markdown(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    if args.md:
        args.md.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
