#!/usr/bin/env python3
"""The worked analysis committed as ``reports/analysis/`` (issue 22), rebuilt from the corpus and the models.

1. Validation of the correction on the six-region gold data: per region × category the gold share, the
   share the leave-one-region-out (LORO) fold model labelled (raw) and the corrected share, with error
   rates from the other five regions' held-out documents only (``held_out_validation``).
2. The 2025 and 2026 government work reports of every province in the corpus (pools six_regions,
   extension_pool, other_provinces; the State Council's 2025 report as "national"), labelled with the
   default model (``predict``), analysed by region group and by year. The extension provinces' group is
   gold-anchored with the random control round ``xw0`` of the extension work-report coding (``--gold``: its
   records in those documents), and its raw, corrected and gold-anchored shares are set beside the sample's
   own coded share.
3. The six regions' legislation (the 45 regulations of the six_regions pool) by region, from the LORO
   held-out predictions of the default model's recipe (the shipped model was trained on these passages),
   each region corrected with the other regions' error rates, and gold-anchored with a seeded random 30 %
   of the gold records (``--gold`` on six-region data).

Passage texts go to a scratch folder outside the repository (default /tmp/policyclf-worked); the committed
files hold ids, numbers, and titles and excerpts of at most 20 characters (checked at the end).

Usage: scripts/worked_analysis.py [--out reports/analysis] [--scratch /tmp/policyclf-worked] [--n-boot 1000]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from policyclf.analysis import AnalysisWarning, analyze, held_out_validation  # noqa: E402
from policyclf.corpus import load_documents, load_passages  # noqa: E402
from policyclf.error_rates import load_error_rates  # noqa: E402
from policyclf.jsonutil import write_json  # noqa: E402
from policyclf.labels import CATEGORIES  # noqa: E402
from policyclf.predict import default_model_dir, predict  # noqa: E402

EXCERPT = 20  # committed files may not hold 24+ consecutive corpus characters
XW0 = "xw0"  # the random control round of the extension work reports (data suggest --strategy random --seed 300)
SIX = ("beijing", "guangdong", "jiangsu", "shandong", "shanghai", "zhejiang")
PAPER_BRIDGING = ("jiangsu", "zhejiang", "guangdong")  # bridging bodies for industry–university–research cooperation


def region_group(doc: dict) -> str:
    if doc["region"] == "national":
        return "national"
    return {"six_regions": "six regions", "extension_pool": "extension provinces",
            "other_provinces": "other provinces"}[doc["pool"]]


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def fmt(x: float | None) -> str:
    return "—" if x is None or x != x else f"{x:.3f}"


def xw0_sample(keep: set[str], docs: dict, passages: dict) -> tuple[list[dict], dict]:
    """The final records of round xw0 whose passages lie in the extension provinces' analysed documents.

    The round was picked uniformly at random from every uncoded work-report passage of pool extension_pool
    (its picks log: ``rounds/xw0.picks.jsonl``), before the other work-report rounds, so restricted to some of
    those documents it is a uniform random sample of their passages. Returns the records and a count of where
    the round's passages lie."""
    ann = ROOT / "data" / "annotated"
    recs = [json.loads(line) for line in (ann / "extension_pool.jsonl").open(encoding="utf-8")]
    recs = [r for r in recs if r.get("round") == XW0]
    picks = {json.loads(line)["passage_id"] for line in (ann / "rounds" / f"{XW0}.picks.jsonl").open(encoding="utf-8")}
    if {r["passage_id"] for r in recs} != picks:
        sys.exit(f"error: the {XW0} records of extension_pool.jsonl are not the passages of its picks log")
    where = {"round": len(recs), "extension provinces": 0, "national (analysed)": 0, "elsewhere": 0}
    sample = []
    for r in recs:
        d = passages[r["passage_id"]].doc_id
        if d not in keep:
            where["elsewhere"] += 1
        elif region_group(docs[d]) == "extension provinces":
            where["extension provinces"] += 1
            sample.append({k: r[k] for k in ("passage_id", "text_sha1", "labels")})
        else:
            where["national (analysed)"] += 1
    return sample, where


def clopper_pearson(k: int, n: int) -> tuple[float, float]:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="exact")
    return float(ci.low), float(ci.high)


def validation(out: Path, model: Path) -> dict:
    rates = load_error_rates(model)
    runs = {"all": held_out_validation(rates, "acc"), "pacc": held_out_validation(rates, "pacc"),
            "regulation": held_out_validation(rates, "acc", doc_type="regulation"),
            "work_report": held_out_validation(rates, "acc", doc_type="work_report"),
            "work_report_own_rates": held_out_validation(rates, "acc", doc_type="work_report",
                                                         rates_doc_type="work_report")}
    write_json(out / "validation.json", {"model": model.as_posix(), "error_rates": rates.info,
                                         **runs})
    pacc = {(r["region"], r["category"]): r["corrected"] for r in runs["pacc"]["rows"]}
    rows = [{**{k: r[k] for k in ("region", "category", "n_docs", "n_passages")},
             **{k: round(r[k], 4) for k in ("gold", "raw", "corrected")},
             "corrected_pacc": round(pacc[(r["region"], r["category"])], 4), "clipped": r["clipped"],
             "abs_err_raw": round(abs(r["raw"] - r["gold"]), 4), "abs_err_corrected": round(abs(r["corrected"] - r["gold"]), 4)}
            for r in runs["all"]["rows"]]
    write_csv(out / "validation.csv", rows)
    return runs


def work_reports(scratch: Path, out: Path, model: Path, n_boot: int) -> dict:
    docs = load_documents()
    passages = load_passages()
    keep = {d for d, rec in docs.items() if rec["doc_type"] == "work_report" and rec["year"] in (2025, 2026)
            and rec["pool"] in ("six_regions", "extension_pool", "other_provinces")}
    items = [{"passage_id": p.passage_id, "text": p.text, "heading": p.heading} for p in passages.values()
             if p.doc_id in keep]
    write_jsonl(scratch / "work_reports.jsonl", items)
    write_csv(scratch / "work_reports_meta.csv",
              [{"doc": d, "region": docs[d]["region"], "region_group": region_group(docs[d]), "year": docs[d]["year"],
                "pool": docs[d]["pool"], "title": docs[d]["title"]} for d in sorted(keep)])
    pred = scratch / "work_reports_pred.jsonl"
    if not pred.exists():
        predict(scratch / "work_reports.jsonl", pred, model, progress=False)
    sample, sample_where = xw0_sample(keep, docs, passages)
    write_jsonl(scratch / "work_reports_gold_xw0.jsonl", sample)
    results = {}
    for key in ("region_group", "year"):
        # the xw0 sample is uniform over the extension provinces' passages only: it anchors that group of the
        # region-group analysis; a year group mixes in documents the sample never reached, so no --gold there
        gold = scratch / "work_reports_gold_xw0.jsonl" if key == "region_group" else None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AnalysisWarning)
            res = analyze(pred, out / f"work_reports_by_{key}", group_by=key, metadata=scratch / "work_reports_meta.csv",
                          model_dir=model, texts=scratch / "work_reports.jsonl", excerpt_chars=EXCERPT,
                          n_boot=n_boot, force=True, rates_doc_type="work_report", gold=gold,
                          title=f"2025/2026 government work reports by {key.replace('_', ' ')} (default model; "
                                "corrected with the held-out work reports' error rates"
                                + (f"; extension provinces gold-anchored with the random round {XW0})" if gold else ")"))
        results[key] = res
    # the sample's own coded share (a binomial estimate of its own) beside raw, corrected and gold-anchored
    by_pid = {json.loads(line)["passage_id"]: json.loads(line)["labels"] for line in pred.open(encoding="utf-8")}
    n_s = len(sample)
    check = []
    for r in results["region_group"].prevalence:
        if r["group"] != "extension provinces":
            continue
        c = r["category"]
        k = sum(c in s["labels"] for s in sample)
        lo, hi = clopper_pearson(k, n_s)
        check.append({"category": c, "n_docs": r["n_docs"], "n_passages": r["n_passages"],
                      **{x: None if r[x] is None or r[x] != r[x] else round(r[x], 4)
                         for x in ("raw", "raw_lo", "raw_hi", "corrected", "corrected_lo", "corrected_hi",
                                   "gold_anchored", "gold_lo", "gold_hi")},
                      "n_sample": n_s, "sample_positives": k, "sample_share": round(k / n_s, 4),
                      "sample_lo": round(lo, 4), "sample_hi": round(hi, 4),
                      "model_on_sample": round(sum(c in by_pid[s["passage_id"]] for s in sample) / n_s, 4)})
    write_csv(out / "work_reports_xw0_check.csv", check)
    with warnings.catch_warnings():  # the same with the error rates of all held-out documents (not committed)
        warnings.simplefilter("ignore", AnalysisWarning)
        pooled = analyze(pred, scratch / "work_reports_pooled_rates", group_by="region_group",
                         metadata=scratch / "work_reports_meta.csv", model_dir=model, n_boot=200, n_perm=100, force=True)
    # the six regions' work reports are training data of the shipped model: its labels there are in-sample;
    # set them beside the complete gold coding and the held-out (LORO) fold predictions of the same passages
    gold = {}
    for line in (ROOT / "data" / "annotated" / "six_regions.jsonl").open(encoding="utf-8"):
        rec = json.loads(line)
        gold[rec["passage_id"]] = rec["labels"]
    six = [json.loads(line) for line in pred.open(encoding="utf-8")]
    six = [r for r in six if docs[passages[r["passage_id"]].doc_id]["pool"] == "six_regions"]
    loro = {}
    for f in sorted((ROOT / "reports" / "distilled" / "predictions" / "distilled").glob("loro-*.jsonl")):
        for line in f.open(encoding="utf-8"):
            r = json.loads(line)
            loro[r["passage_id"]] = [c for c, s, t in zip(CATEGORIES, r["scores"], r["thresholds"]) if s >= t]
    n = len(six)
    in_sample = {c: {"gold": sum(c in gold[r["passage_id"]] for r in six) / n,
                     "shipped_model": sum(c in r["labels"] for r in six) / n,
                     "loro_held_out": sum(c in loro[r["passage_id"]] for r in six) / n} for c in CATEGORIES}
    return {"docs": len(keep), "passages": len(items), "results": results, "pooled": pooled,
            "six_in_sample": in_sample, "six_n": n, "xw0_check": check, "xw0_where": sample_where}


def legislation(scratch: Path, out: Path, model: Path, n_boot: int) -> dict:
    passages = load_passages()
    docs = load_documents()
    pred_dir = ROOT / "reports" / "distilled" / "predictions" / "distilled"
    rows, items = [], []
    for f in sorted(pred_dir.glob("loro-*.jsonl")):
        for line in f.open(encoding="utf-8"):
            r = json.loads(line)
            p = passages[r["passage_id"]]
            if p.doc_type != "regulation":
                continue
            rows.append({"passage_id": p.passage_id, "doc": p.doc_id, "seq": p.seq,
                         "labels": [c for c, s, t in zip(CATEGORIES, r["scores"], r["thresholds"]) if s >= t],
                         "scores": dict(zip(CATEGORIES, r["scores"]))})
            items.append({"passage_id": p.passage_id, "text": p.text})
    write_jsonl(scratch / "legislation_pred.jsonl", rows)
    write_jsonl(scratch / "legislation.jsonl", items)
    write_csv(scratch / "legislation_meta.csv", [{"doc": d, "region": docs[d]["region"], "title": docs[d]["title"]}
                                                  for d in sorted({r["doc"] for r in rows})])
    gold_all = {}
    for line in (ROOT / "data" / "annotated" / "six_regions.jsonl").open(encoding="utf-8"):
        rec = json.loads(line)
        gold_all[rec["passage_id"]] = rec
    ids = sorted(r["passage_id"] for r in rows)
    sample = sorted(random.Random(22).sample(ids, round(0.3 * len(ids))))
    write_jsonl(scratch / "legislation_gold_sample.jsonl",
                [{k: gold_all[p][k] for k in ("passage_id", "text_sha1", "labels")} for p in sample])
    rates = load_error_rates(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)
        res = analyze(scratch / "legislation_pred.jsonl", out / "legislation_by_region", group_by="region",
                      metadata=scratch / "legislation_meta.csv", model_dir=model,
                      gold=scratch / "legislation_gold_sample.jsonl", texts=scratch / "legislation.jsonl",
                      excerpt_chars=EXCERPT, n_boot=n_boot, force=True,
                      rates_by_group={r: rates.without_region(r) for r in SIX},
                      title="six regions' legislation by region (held-out LORO predictions of the default model's recipe)")
    full_gold = {}
    for region in SIX:
        pids = [r["passage_id"] for r in rows if passages[r["passage_id"]].region == region]
        full_gold[region] = {c: sum(c in gold_all[p]["labels"] for p in pids) / len(pids) for c in CATEGORIES}
    return {"result": res, "full_gold": full_gold, "n_gold_sample": len(sample), "n": len(rows)}


def check_no_corpus_runs(out: Path) -> None:
    """No committed file may hold 24+ consecutive characters of corpus text."""
    corpus = "\n".join(p.text for p in load_passages().values()) + "\n".join(
        d["title"] for d in load_documents().values())
    for path in out.rglob("*"):
        if path.suffix not in (".md", ".csv", ".json", ".html"):
            continue
        text = path.read_text(encoding="utf-8-sig")
        for run in re.findall(r"[^\x00-\x7f]{24,}", text):
            for i in range(len(run) - 23):
                if run[i:i + 24] in corpus:
                    sys.exit(f"error: {path} holds corpus text ({run[i:i + 24]!r}…)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=ROOT / "reports" / "analysis")
    ap.add_argument("--scratch", type=Path, default=Path("/tmp/policyclf-worked"))
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()
    os.chdir(ROOT)  # paths in the reports relative to the project
    args.out = args.out.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    args.scratch.mkdir(parents=True, exist_ok=True)
    model = default_model_dir().relative_to(ROOT)
    val = validation(args.out, model)
    wr = work_reports(args.scratch, args.out, model, args.n_boot)
    leg = legislation(args.scratch, args.out, model, args.n_boot)
    write_summary(args.out, model, val, wr, leg)
    check_no_corpus_runs(args.out)
    print(f"wrote {args.out}")


def xw0_check_lines(wr: dict) -> list[str]:
    """The extension provinces' shares beside the random sample's own coded share (tables.md)."""
    lines: list[str] = []
    chk = wr["xw0_check"]
    w = wr["xw0_where"]
    lines += ["", f"### Check against the random sample: extension provinces' 2025/2026 work reports ({chk[0]['n_docs']} "
                  f"documents, {chk[0]['n_passages']:,} passages; {chk[0]['n_sample']} of them in the random round {XW0})", "",
              f"Round {XW0} ({w['round']} passages, `data suggest --strategy random --seed 300` over every uncoded work-report "
              f"passage of extension_pool; {w['extension provinces']} lie in these reports, {w['national (analysed)']} in the "
              f"national 2025 report, {w['elsewhere']} in State Council reports of earlier years). The sample share is itself "
              f"an estimate: k of n = {chk[0]['n_sample']} coded passages with its exact binomial (Clopper–Pearson) 95 % interval "
              "(without the finite-population correction, so slightly wide). Raw and corrected do not use the sample (the "
              "correction uses the six regions' held-out work reports), so the sample checks them; the gold-anchored "
              "estimate is built from the same sample and is not an independent check. \"model on the sample\": the "
              "model's share on the same coded passages (the model's error on them, without sampling noise).", "",
              "| category | raw [95 % CI] | corrected [95 % CI] | gold-anchored [95 % CI] | sample: k / n, share [95 % CI] "
              "| model on the sample |", "|---|---|---|---|---|---|"]
    for r in chk:
        lines.append(f"| {r['category']} | {fmt(r['raw'])} [{fmt(r['raw_lo'])}, {fmt(r['raw_hi'])}] | "
                     f"{fmt(r['corrected'])} [{fmt(r['corrected_lo'])}, {fmt(r['corrected_hi'])}] | "
                     f"{fmt(r['gold_anchored'])} [{fmt(r['gold_lo'])}, {fmt(r['gold_hi'])}] | "
                     f"{r['sample_positives']} / {r['n_sample']}, {fmt(r['sample_share'])} [{fmt(r['sample_lo'])}, "
                     f"{fmt(r['sample_hi'])}] | {fmt(r['model_on_sample'])} |")
    ok = [r for r in chk if r["corrected"] is not None]
    lines += ["", "Mean absolute difference from the sample share over categories: raw "
                  f"{sum(abs(r['raw'] - r['sample_share']) for r in chk) / len(chk):.3f} ({len(chk)} categories), corrected "
                  f"{sum(abs(r['corrected'] - r['sample_share']) for r in ok) / len(ok):.3f} ({len(ok)} with an estimate; "
                  f"raw on the same {len(ok)}: {sum(abs(r['raw'] - r['sample_share']) for r in ok) / len(ok):.3f}). "
                  "Sample share inside the interval of raw: "
                  f"{sum(r['raw_lo'] <= r['sample_share'] <= r['raw_hi'] for r in chk)}/{len(chk)}, of corrected: "
                  f"{sum(r['corrected_lo'] <= r['sample_share'] <= r['corrected_hi'] for r in ok)}/{len(ok)}; raw inside the "
                  f"sample share's interval: {sum(r['sample_lo'] <= r['raw'] <= r['sample_hi'] for r in chk)}/{len(chk)}, "
                  f"corrected: {sum(r['sample_lo'] <= r['corrected'] <= r['sample_hi'] for r in ok)}/{len(ok)} (values "
                  "rounded to 4 decimals; the raw interval holds only the documents' sampling noise, not the model's error)."]
    return lines


def write_summary(out: Path, model: Path, val: dict, wr: dict, leg: dict) -> None:
    lines = ["# Worked analysis: tables (written by scripts/worked_analysis.py)", "",
             f"Model: `{model.as_posix()}`; error rates: `{model.as_posix()}/error_rates.json`.", ""]
    lines += ["## 1. Validation on the six-region gold data (LORO)", "",
              "Mean absolute error over region × category cells against the gold share (mean signed error in brackets). "
              "Corrected: each region with error rates from the other five regions' held-out documents.", "",
              "| passages scored | error rates from | raw MAE | corrected MAE |", "|---|---|---|---|"]
    for key, label, rlabel in (("all", "all 3,159 (ACC)", "all documents of the other regions"),
                               ("pacc", "all 3,159 (PACC, mean scores)", "all documents of the other regions"),
                               ("regulation", "regulations", "all documents of the other regions"),
                               ("work_report", "work reports", "all documents of the other regions"),
                               ("work_report_own_rates", "work reports", "work reports of the other regions")):
        v = val[key]
        lines.append(f"| {label} | {rlabel} | {fmt(v['mae']['raw'])} ({v['mean_signed_error']['raw']:+.3f}) | "
                     f"{fmt(v['mae']['corrected'])} ({v['mean_signed_error']['corrected']:+.3f}) |")
    lines += ["", "Per region × category (all passages, ACC):", "",
              "| region | category | passages | gold | raw | corrected |", "|---|---|---|---|---|---|"]
    for r in val["all"]["rows"]:
        lines.append(f"| {r['region']} | {r['category']} | {r['n_passages']} | {fmt(r['gold'])} | {fmt(r['raw'])} | "
                     f"{fmt(r['corrected'])}{' (clipped)' if r['clipped'] else ''} |")
    for key in ("region_group", "year"):
        res = wr["results"][key]
        lines += ["", f"## 2. Work reports 2025/2026 by {key.replace('_', ' ')} ({wr['docs']} documents, "
                      f"{wr['passages']} passages)", "",
                  "| group | docs | passages | " + " | ".join(CATEGORIES) + " |", "|---|---|---|" + "---|" * 7]
        for g in res.report["groups"]:
            cells = [r for r in res.prevalence if r["group"] == g["group"]]
            lines.append(f"| {g['group']} | {g['n_docs']} | {g['n_passages']} | " + " | ".join(
                f"{fmt(r['raw'])} → {fmt(r['corrected'])} [{fmt(r['corrected_lo'])}, {fmt(r['corrected_hi'])}]"
                for r in cells) + " |")
        t = res.report["tests"].get("overall", {})
        if key == "region_group":
            w = wr["xw0_where"]
            lines += ["", f"Gold-anchored [95 % CI] (prediction-powered inference, `--gold`: the {w['extension provinces']} "
                          f"passages of the random round {XW0} that lie in the extension provinces' reports). "
                          "Only that group has a random coded sample; the others show —"
                          + (f" (the round's {w['national (analysed)']} passages in the national 2025 report are too few for "
                             "an interval and are left out)" if w["national (analysed)"] else "") + ":", "",
                      "| group | coded (random) | " + " | ".join(CATEGORIES) + " |", "|---|---|" + "---|" * 7]
            for g in res.report["groups"]:
                cells = [r for r in res.prevalence if r["group"] == g["group"]]
                n_gold = cells[0].get("n_gold") or 0
                lines.append(f"| {g['group']} | {n_gold or '—'} | " + " | ".join(
                    "—" if r.get("gold_anchored") is None or r["gold_anchored"] != r["gold_anchored"] else
                    f"{fmt(r['gold_anchored'])} [{fmt(r['gold_lo'])}, {fmt(r['gold_hi'])}]" for r in cells) + " |")
        lines += ["", f"Raw → corrected [95 % CI]. Category mix differs between groups: permutation p = "
                      f"{fmt(t.get('p_permutation'))}, Cramér's V = {fmt(t.get('cramers_v'))}."]
        sig = [p for p in res.report["pairwise"]["rows"] if (p.get("p_holm") or 1) < 0.05]
        lines.append("Pairwise differences significant after Holm: " + (
            "; ".join(f"{p['category']} {p['group_a']} − {p['group_b']} {p['diff']:+.3f} [{p['lo']:+.3f}, {p['hi']:+.3f}]"
                      for p in sig) if sig else "none") + ".")
        if key == "region_group":
            lines += xw0_check_lines(wr)
    pooled = {(r["group"], r["category"]): r for r in wr["pooled"].prevalence}
    lines += ["", "The work reports above are corrected with the error rates of the 12 held-out six-region work reports "
                  "(validation, table 1: mean signed error +0.004 there against −0.018 with the rates of all documents). "
                  "With the rates of all held-out documents instead (regulations mostly), by region group:", "",
              "| group | " + " | ".join(CATEGORIES) + " |", "|---|" + "---|" * 7]
    for g in wr["pooled"].report["groups"]:
        lines.append(f"| {g['group']} | " + " | ".join(
            fmt(pooled[(g['group'], c)]["corrected"]) + (" (clipped)" if pooled[(g["group"], c)]["clipped"] else "")
            for c in CATEGORIES) + " |")
    lines += ["", f"The six regions' work reports ({wr['six_n']} passages) are training data of the shipped model, so its "
                  "labels there are in-sample. Share of passages per category: complete gold coding, the shipped model, "
                  "and the held-out LORO fold models:", "",
              "| | " + " | ".join(CATEGORIES) + " |", "|---|" + "---|" * 7]
    for key, label in (("gold", "gold (all coded)"), ("shipped_model", "shipped model (in-sample)"),
                       ("loro_held_out", "LORO fold models (held out)")):
        lines.append(f"| {label} | " + " | ".join(fmt(wr["six_in_sample"][c][key]) for c in CATEGORIES) + " |")
    res = leg["result"]
    lines += ["", f"## 3. Six regions' legislation by region ({leg['n']} articles; held-out LORO predictions; "
                  f"gold-anchored with a random {leg['n_gold_sample']} coded articles)", "",
              "social_organizations (bridging bodies and associations; the paper: Jiangsu, Zhejiang and Guangdong set "
              "up bridging bodies for industry–university–research cooperation):", "",
              "| region | articles | gold share (all coded) | raw | corrected [95 % CI] | gold-anchored [95 % CI] |",
              "|---|---|---|---|---|---|"]
    for r in res.prevalence:
        if r["category"] == "social_organizations":
            lines.append(f"| {r['group']}{' (paper)' if r['group'] in PAPER_BRIDGING else ''} | {r['n_passages']} | "
                         f"{fmt(leg['full_gold'][r['group']]['social_organizations'])} | {fmt(r['raw'])} | "
                         f"{fmt(r['corrected'])} [{fmt(r['corrected_lo'])}, {fmt(r['corrected_hi'])}] | "
                         f"{fmt(r['gold_anchored'])} [{fmt(r['gold_lo'])}, {fmt(r['gold_hi'])}] |")
    lines += ["", "All categories, corrected − full gold share, mean absolute over regions: " + ", ".join(
        f"{c} {sum(abs(r['corrected'] - leg['full_gold'][r['group']][c]) for r in res.prevalence if r['category'] == c) / 6:.3f}"
        for c in CATEGORIES) + "; gold-anchored − full gold: " + ", ".join(
        f"{c} {sum(abs(r['gold_anchored'] - leg['full_gold'][r['group']][c]) for r in res.prevalence if r['category'] == c) / 6:.3f}"
        for c in CATEGORIES) + "."]
    t = res.report["tests"]["per_category"]["social_organizations"]
    lines.append(f"social_organizations differs between regions: permutation p = {fmt(t.get('p_permutation'))} "
                 f"(Holm {fmt(t.get('p_holm'))}), Cramér's V = {fmt(t.get('cramers_v'))}.")
    (out / "tables.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
