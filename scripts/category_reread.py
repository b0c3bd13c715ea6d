#!/usr/bin/env python3
"""Re-adjudicate one category over final records, under the current coding notes (a full second reading).

Used when a blind sample (``make_reread_sample.py`` + ``reread_compare.py``) shows that a category
was coded more narrowly in earlier records than the notes now say. Every selected passage is read
again by an adjudicator who decides that one category (and its sub-codes) afresh. The adjudicator
sees the passage (title, region, heading, text, in corpus order) and the record's *other*
categories (note 20 ties the category to them), never the category under review and never a model
score. A seeded ``--double`` share is read by a second adjudicator; where the two disagree, a third
(``J``) decides blind. The other categories of a record are never touched.

  layout: scripts/category_reread.py layout WORKSPACE/gfr --category government_functions \
              --doc-type regulation --sets six_regions pool test [--per-reader 190] [--double 0.2]
  apply:  scripts/category_reread.py apply WORKSPACE/gfr --name gfr
          (writes the decisions into the final files, logs every passage read, before and after,
           in data/annotated/rounds/NAME.readjudicated.jsonl; refuses while any passage is undecided.
           A changed record keeps its coder and note; NAME is appended to its note and to its
           `readjudicated` list)
  disagreements: scripts/category_reread.py disagreements WORKSPACE/gfr  (lays out J/in.jsonl)

Reader output, one line per passage: {"passage_id": ..., "applies": true|false, "subcodes": [...], "note": ""}.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from policyclf.corpus import CODING_SETS, annotations_dir, load_documents, load_passages, read_jsonl  # noqa: E402
from policyclf.labels import CATEGORIES, SUBCODE_TO_CATEGORY  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_coding_round import split_contiguous, write_coder  # noqa: E402
from reread_compare import kappa  # noqa: E402

FILES = {**{k: v[1] for k, v in CODING_SETS.items()}, "test": "other_provinces_test.jsonl"}


def _final(name: str) -> tuple[Path, list[dict]]:
    path = annotations_dir() / FILES[name]
    return path, [rec for _, rec in read_jsonl(path)]


def _batches(ids: list[str], doc_of: dict[str, str], size: int) -> list[list[str]]:
    """Contiguous batches of about ``size``; any batch over 1.4 × size is halved at the document end nearest its middle."""
    out = []
    for batch in split_contiguous(ids, doc_of, size):
        todo = [batch]
        while todo:
            b = todo.pop(0)
            if len(b) <= 1.4 * size:
                out.append(b)
                continue
            ends = [i for i in range(1, len(b)) if doc_of[b[i]] != doc_of[b[i - 1]]] or [len(b) // 2]
            cut = min(ends, key=lambda i: abs(i - len(b) / 2))
            todo[:0] = [b[:cut], b[cut:]]
    return out


def _write_reader(folder: Path, ids: list[str], passages, documents, records: dict[str, dict], category: str) -> None:
    """A reader's folder; each passage carries the record's codes outside ``category`` (note 20 needs them)."""
    def other_codes(pid: str) -> dict:
        rec = records[pid]
        return {"other_codes": {"labels": [c for c in rec.get("labels", []) if c != category],
                                "subcodes": [s for s in rec.get("subcodes", []) if SUBCODE_TO_CATEGORY.get(s) != category]}}

    write_coder(folder, ids, passages, documents, other_codes)


def layout(args: argparse.Namespace) -> None:
    rd: Path = args.round_dir
    if (rd / "sets.json").exists():
        sys.exit(f"{rd}/sets.json exists: a re-adjudication is laid out once")
    if args.category not in CATEGORIES:
        sys.exit(f"unknown category {args.category!r}")
    passages = load_passages(args.corpus)
    documents = load_documents(args.corpus)
    records, source = {}, {}
    for name in args.sets:
        _, recs = _final(name)
        for rec in recs:
            pid = rec["passage_id"]
            if pid in passages and (not args.doc_type or passages[pid].doc_type == args.doc_type):
                records[pid], source[pid] = rec, name
    order = {pid: i for i, pid in enumerate(passages)}
    ids = sorted(records, key=order.__getitem__)
    rng = random.Random(f"{rd.name}-{args.seed}")
    double = set(rng.sample(ids, math.ceil(len(ids) * args.double)))
    doc_of = {pid: passages[pid].doc_id for pid in ids}
    a_batches = _batches(ids, doc_of, args.per_reader)
    double_ids = [pid for pid in ids if pid in double]
    b_batches = _batches(double_ids, doc_of, args.per_reader)
    for k, batch in enumerate(a_batches, 1):
        _write_reader(rd / f"A{k}", batch, passages, documents, records, args.category)
    for k, batch in enumerate(b_batches, 1):
        _write_reader(rd / f"B{k}", batch, passages, documents, records, args.category)
    (rd / "sets.json").write_text(json.dumps({"kind": "category_reread", "category": args.category,
                                              "doc_type": args.doc_type, "sets": args.sets, "seed": args.seed,
                                              "passages": ids, "source": source, "double": double_ids}, indent=0))
    print(f"{rd.name}: {len(ids)} passages in {len(a_batches)} batches "
          f"({min(map(len, a_batches))}-{max(map(len, a_batches))}); {len(double_ids)} read twice in "
          f"{len(b_batches)} second batches")


def _decisions(folder: Path, category: str) -> dict[str, tuple[bool, tuple[str, ...], str]]:
    """A reader's decisions; refuses lines for passages not in the reader's own in.jsonl, and duplicates."""
    out = {}
    given = {rec["passage_id"] for _, rec in read_jsonl(folder / "in.jsonl")} if (folder / "in.jsonl").is_file() else None
    for n, (_, rec) in enumerate(read_jsonl(folder / "out.jsonl"), 1):
        if given is not None and rec.get("passage_id") not in given:
            sys.exit(f"{folder.name}/out.jsonl line {n}: {rec.get('passage_id')!r} is not in {folder.name}/in.jsonl")
        if rec.get("passage_id") in out:
            sys.exit(f"{folder.name}/out.jsonl line {n}: {rec['passage_id']} decided twice")
        applies, subs = rec.get("applies"), rec.get("subcodes", [])
        if not isinstance(applies, bool) or not isinstance(subs, list):
            sys.exit(f"{folder.name}/out.jsonl line {n}: 'applies' must be true or false and 'subcodes' a list")
        bad = [s for s in subs if SUBCODE_TO_CATEGORY.get(s) != category]
        if bad or (subs and not applies):
            sys.exit(f"{folder.name}/out.jsonl line {n}: sub-codes {subs} do not fit applies={applies} for {category}")
        out[rec["passage_id"]] = (applies, tuple(sorted(set(subs))), str(rec.get("note", ""))[:40])
    return out


def _collect(rd: Path) -> tuple[dict, dict, dict, dict]:
    sets = json.loads((rd / "sets.json").read_text())
    cat = sets["category"]
    first, second, judge = {}, {}, {}
    import re

    for folder in sorted(p for p in rd.iterdir() if p.is_dir() and re.fullmatch(r"[AB]\d+|J", p.name)):
        got = _decisions(folder, cat) if (folder / "out.jsonl").is_file() else {}
        target = {"A": first, "B": second, "J": judge}[folder.name[:1]]
        clash = set(got) & set(target)
        if clash:
            sys.exit(f"{folder.name}: {len(clash)} passages also decided in another {folder.name[:1]} folder, e.g. {sorted(clash)[0]}")
        target.update(got)
    stray = set(judge) - {p for p in sets["double"] if p in first and p in second and first[p][0] != second[p][0]}
    if stray:
        sys.exit(f"J decided {len(stray)} passages that are not disagreements, e.g. {sorted(stray)[0]}")
    return sets, first, second, judge


def agreement(sets: dict, first: dict, second: dict) -> dict:
    both = [p for p in sets["double"] if p in first and p in second]
    a = [first[p][0] for p in both]
    b = [second[p][0] for p in both]
    n = len(both)
    if not n:
        return {"read_twice": 0}
    k = kappa(a, b)
    return {"read_twice": n, "agree": round(sum(x == y for x, y in zip(a, b)) / n, 4),
            "kappa": None if k != k else round(k, 4),
            "both_apply": sum(x and y for x, y in zip(a, b)),
            "same_subcodes_where_both_apply": round(sum(first[p][1] == second[p][1] for p in both if first[p][0] and second[p][0])
                                                    / max(1, sum(x and y for x, y in zip(a, b))), 4)}


def disagreements(args: argparse.Namespace) -> None:
    rd = args.round_dir
    sets, first, second, _ = _collect(rd)
    split = [p for p in sets["double"] if p in first and p in second and first[p][0] != second[p][0]]
    print(json.dumps(agreement(sets, first, second)))
    if not split:
        print("no disagreements")
        return
    if (rd / "J").exists():
        sys.exit(f"{rd}/J exists")
    passages, documents = load_passages(args.corpus), load_documents(args.corpus)
    records = {}
    for name in sets["sets"]:
        records.update({r["passage_id"]: r for r in _final(name)[1]})
    _write_reader(rd / "J", split, passages, documents, records, sets["category"])
    print(f"{len(split)} disagreements laid out in {rd / 'J'}")


def decide(sets: dict, first: dict, second: dict, judge: dict) -> tuple[dict, list[str]]:
    """passage_id -> (applies, subcodes, note); and the passages still undecided."""
    out, missing = {}, []
    for pid in sets["passages"]:
        a, b = first.get(pid), second.get(pid)
        if pid in judge:
            out[pid] = judge[pid]
        elif a is not None and (b is None or b[0] == a[0]):
            out[pid] = a  # where both readers agree that it applies, the first reader's sub-codes stand
            if pid in sets["double"] and b is None:
                missing.append(pid)
        else:
            missing.append(pid)
    return out, missing


def apply(args: argparse.Namespace) -> None:
    rd = args.round_dir
    sets, first, second, judge = _collect(rd)
    cat = sets["category"]
    decided, missing = decide(sets, first, second, judge)
    if missing:
        sys.exit(f"{len(missing)} passages are not decided yet (unread, or readers disagree with no J decision), "
                 f"e.g. {missing[:3]}")
    log_path = annotations_dir() / "rounds" / f"{args.name}.readjudicated.jsonl"
    if log_path.exists():
        sys.exit(f"{log_path} exists: this re-adjudication was applied already")
    log_rows, changed = [], {"added": 0, "removed": 0, "subcodes": 0}
    for name in sets["sets"]:
        path, recs = _final(name)
        for rec in recs:
            pid = rec["passage_id"]
            if pid not in decided:
                continue
            applies, subs, note = decided[pid]
            labels = [c for c in rec.get("labels", []) if c != cat]
            old_subs = [s for s in rec.get("subcodes", []) if SUBCODE_TO_CATEGORY.get(s) != cat]
            new_labels = [c for c in CATEGORIES if c in labels or (c == cat and applies)]
            new_subs = old_subs + list(subs)
            had = cat in rec.get("labels", [])
            before = {"labels": rec.get("labels", []), "subcodes": rec.get("subcodes", []), "coder": rec.get("coder"),
                      "note": rec.get("note", "")}
            kept = had == applies and sorted(rec.get("subcodes", [])) == sorted(new_subs)
            if not kept:
                changed["added" if applies and not had else "removed" if had and not applies else "subcodes"] += 1
                # the coder and the note stay (the note is the coder's, about any category); the change is
                # marked in its own field, so `data agreement` still counts only first-round adjudications
                mark = f"{args.name}: {cat}" + (f" {note}" if note else "")
                rec.update({"labels": new_labels, "subcodes": new_subs,
                            "note": "; ".join(x for x in (rec.get("note", ""), mark) if x),
                            "readjudicated": [*rec.get("readjudicated", []), args.name]})
            log_rows.append({"passage_id": pid, "set": name, "kept": kept, "before": before,
                             "after": {"labels": rec["labels"], "subcodes": rec["subcodes"]},
                             "read_by": "J" if pid in judge else ("A+B" if pid in second else "A")})
        tmp = path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
        tmp.replace(path)
    log_path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in log_rows), encoding="utf-8")
    summary = {"name": args.name, "category": cat, "read": len(log_rows), **changed,
               "agreement": agreement(sets, first, second), "judged": len(judge)}
    (annotations_dir() / "rounds" / f"{args.name}.summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    print(json.dumps(summary))


def main() -> None:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    lay = sub.add_parser("layout")
    lay.add_argument("round_dir", type=Path)
    lay.add_argument("--category", required=True)
    lay.add_argument("--doc-type")
    lay.add_argument("--sets", nargs="+", choices=list(FILES), required=True)
    lay.add_argument("--per-reader", type=int, default=190)
    lay.add_argument("--double", type=float, default=0.2)
    lay.add_argument("--seed", type=int, default=0)
    lay.add_argument("--corpus")
    dis = sub.add_parser("disagreements")
    dis.add_argument("round_dir", type=Path)
    dis.add_argument("--corpus")
    app = sub.add_parser("apply")
    app.add_argument("round_dir", type=Path)
    app.add_argument("--name", required=True)
    args = ap.parse_args()
    {"layout": layout, "disagreements": disagreements, "apply": apply}[args.cmd](args)


if __name__ == "__main__":
    main()
