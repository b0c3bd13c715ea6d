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
    return wkappa(a, b, [1.0] * len(a))


def read_outs(rd: Path) -> dict[str, list[set[str]]]:
    """passage_id -> the label sets of its re-readers (A* and B* folders)."""
    got: dict[str, list[set[str]]] = {}
    for folder in sorted(p for p in rd.iterdir() if p.is_dir() and p.name[:1] in "AB"):
        for _, rec in read_jsonl(folder / "out.jsonl"):
            got.setdefault(rec["passage_id"], []).append(set(rec.get("labels", [])))
    return got


def wkappa(a: list[bool], b: list[bool], w: list[float]) -> float:
    """Cohen's kappa with survey weights (each passage stands for ``w`` passages of the population)."""
    tot = sum(w)
    if not tot:
        return float("nan")
    po = sum(wi for x, y, wi in zip(a, b, w) if x == y) / tot
    pa = sum(wi for x, wi in zip(a, w) if x) / tot
    pb = sum(wi for y, wi in zip(b, w) if y) / tot
    pe = pa * pb + (1 - pa) * (1 - pb)
    return float("nan") if pe == 1 else (po - pe) / (1 - pe)


def _resolve(path: str | Path) -> Path:
    path = Path(path)
    return path if path.is_absolute() else Path(__file__).resolve().parents[1] / path


def sampling_strata(sets: dict, passages, strata_from: Path | None) -> tuple[dict[str, bool], dict[bool, int], str]:
    """Each sampled passage's stratum (has the label?) and the stratum sizes, as they were when it was drawn.

    From ``sets.json`` where the sample recorded them; else recomputed from ``strata_from`` (the
    version of the records the sample was drawn from); else from the sampled file as it is now, which
    is right only if it has not changed since (the result says which).
    """
    if "strata" in sets:
        return ({p: v == "with" for p, v in sets["strata"].items()},
                {True: sets["population"]["with"], False: sets["population"]["without"]}, "sets.json")
    src = strata_from or _resolve(sets["annotations"])
    label, pop, has = sets["label"], {True: 0, False: 0}, {}
    for _, rec in read_jsonl(src):
        pid = rec["passage_id"]
        if pid in passages and (not sets.get("doc_type") or passages[pid].doc_type == sets["doc_type"]):
            has[pid] = label in rec.get("labels", [])
            pop[has[pid]] += 1
    return {p: has[p] for p in sets["passages"]}, pop, str(strata_from or sets["annotations"]) + (
        "" if strata_from else " (as it is now: right only if unchanged since the sample was drawn)")


def compare(rd: Path, corpus: str | None = None, annotations: Path | None = None,
            strata_from: Path | None = None) -> dict:
    """The second reading against the records in ``annotations`` (default: the sampled file as it is now).

    Sampling strata and weights are those of the draw (see :func:`sampling_strata`), whichever version
    of the records is compared: a passage of stratum h stands for N_h / n_h passages of the population.
    """
    sets = json.loads((rd / "sets.json").read_text())
    label = sets["label"]
    ann = _resolve(annotations or sets["annotations"])
    passages = load_passages(corpus)
    stratum, population, strata_source = sampling_strata(sets, passages, strata_from)
    final = {rec["passage_id"]: set(rec.get("labels", [])) for _, rec in read_jsonl(ann)}
    missing = [p for p in sets["passages"] if p not in final]
    if missing:
        raise SystemExit(f"{len(missing)} sampled passages have no record in {ann}, e.g. {missing[0]}")
    outs = read_outs(rd)
    both = [pid for pid in sets["passages"] if len(outs.get(pid, [])) == 2]
    n_h = {h: sum(1 for p in sets["passages"] if stratum[p] == h) for h in (True, False)}
    w = [population[stratum[p]] / n_h[stratum[p]] for p in both]
    out: dict = {"sample": rd.name, "annotations": str(annotations or sets["annotations"]), "label": label,
                 "doc_type": sets.get("doc_type"), "sampled": len(sets["passages"]), "read_twice": len(both),
                 "strata_from": strata_source,
                 "population": {"with": population[True], "without": population[False]}, "categories": {}}
    for cat in CATEGORIES:
        r1 = [cat in outs[pid][0] for pid in both]
        r2 = [cat in outs[pid][1] for pid in both]
        fin = [cat in final[pid] for pid in both]
        row = {"rereaders_kappa": round(kappa(r1, r2), 3),
               "rereader_vs_final_kappa": round((kappa(r1, fin) + kappa(r2, fin)) / 2, 3),
               "rereaders_kappa_weighted": round(wkappa(r1, r2, w), 3),
               "rereader_vs_final_kappa_weighted": round((wkappa(r1, fin, w) + wkappa(r2, fin, w)) / 2, 3),
               "final_positives": sum(fin),
               "rereader_positives_mean": (sum(r1) + sum(r2)) / 2}
        strata, adds, removes = {}, 0.0, 0.0
        for name, has in (("with", True), ("without", False)):
            idx = [i for i, pid in enumerate(both) if stratum[pid] == has]
            agree = [i for i in idx if r1[i] == r2[i]]
            flips = [i for i in agree if r1[i] != fin[i]]
            add = sum(1 for i in flips if r1[i])
            lo, hi = wilson(len(flips), len(agree))
            strata[name] = {"passages": len(idx), "rereaders_agree": len(agree),
                            "consensus_differs_from_final": len(flips), "consensus_adds": add,
                            "consensus_removes": len(flips) - add,
                            "rate": round(len(flips) / len(agree), 3) if agree else None,
                            "rate_ci95": [round(lo, 3), round(hi, 3)],
                            "rereaders_split": len(idx) - len(agree)}
            if agree:
                adds += add / len(agree) * population[has]
                removes += (len(flips) - add) / len(agree) * population[has]
        row["strata"] = strata
        row["estimated_changes_in_population"] = {"added": round(adds), "removed": round(removes)}
        out["categories"][cat] = row
    return out


def to_markdown(res: dict) -> str:
    lab = res["label"]
    lines = [f"# Blind second reading `{res['sample']}`: {res['read_twice']} of {res['sampled']} sampled "
             f"{res['doc_type'] or ''} passages, each read by two coders, against `{res['annotations']}`",
             "", f"Sampling strata (the records' `{lab}` when the sample was drawn, from {res['strata_from']}): "
             f"population {res['population']['with']} with, {res['population']['without']} without. κ on the "
             "sample over-weights the sampled stratum; the weighted κ and the estimated changes stand for the "
             "population (each passage weighted by stratum size / sampled).", "",
             "| category | κ re-readers (sample / weighted) | κ re-reader–record (sample / weighted) | record + | "
             "re-read + (mean) | stratum with: consensus ≠ record | stratum without: consensus ≠ record | "
             "est. changes in population (+ / −) |", "|---|---|---|---|---|---|---|---|"]
    for cat, r in res["categories"].items():
        st = r["strata"]
        cell = {k: f"{st[k]['consensus_differs_from_final']}/{st[k]['rereaders_agree']} "
                   f"[{st[k]['rate_ci95'][0]:.2f}, {st[k]['rate_ci95'][1]:.2f}] (split {st[k]['rereaders_split']})"
                for k in ("with", "without")}
        e = r["estimated_changes_in_population"]
        lines.append(f"| {cat} | {r['rereaders_kappa']:.3f} / {r['rereaders_kappa_weighted']:.3f} | "
                     f"{r['rereader_vs_final_kappa']:.3f} / {r['rereader_vs_final_kappa_weighted']:.3f} | "
                     f"{r['final_positives']} | {r['rereader_positives_mean']:.1f} | {cell['with']} | {cell['without']} | "
                     f"+{e['added']} / −{e['removed']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("round_dir", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--md", type=Path)
    ap.add_argument("--corpus")
    ap.add_argument("--annotations", type=Path, help="compare with this version of the records (default: the sampled file)")
    ap.add_argument("--strata-from", type=Path,
                    help="the version of the records the sample was drawn from (for samples whose sets.json lacks strata)")
    args = ap.parse_args()
    res = compare(args.round_dir, args.corpus, args.annotations, args.strata_from)
    md = to_markdown(res)
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, ensure_ascii=False) + "\n")
    if args.md:
        args.md.write_text(md)
    print(md)


if __name__ == "__main__":
    main()
