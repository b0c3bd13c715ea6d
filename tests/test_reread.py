"""The blind second reading of coded passages: the sample hides its strata, every passage goes to two
coders, and the comparison counts consensus changes per stratum without resolving any disagreement."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import make_reread_sample  # noqa: E402
import reread_compare  # noqa: E402


def lay_out(monkeypatch, fake_repo, fake_corpus, rd, n_with=4, n_without=6):
    docs = {json.loads(x)["doc_id"] for x in (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines()}
    (fake_corpus / "documents.jsonl").write_text(
        "".join(json.dumps({"doc_id": d, "title": f"文件{d}"}, ensure_ascii=False) + "\n" for d in sorted(docs)),
        encoding="utf-8")
    ann = fake_repo / "data" / "annotated" / "six_regions.jsonl"
    monkeypatch.setattr(sys, "argv", ["x", str(rd), "--annotations", str(ann), "--label", "talent_teams",
                                      "--doc-type", "regulation", "--with", str(n_with), "--without", str(n_without),
                                      "--corpus", str(fake_corpus)])
    make_reread_sample.main()
    return ann


def test_sample_is_stratified_in_corpus_order_and_read_twice(monkeypatch, fake_repo, fake_corpus, tmp_path):
    rd = tmp_path / "gf"
    ann = lay_out(monkeypatch, fake_repo, fake_corpus, rd)
    sets = json.loads((rd / "sets.json").read_text())
    final = {json.loads(x)["passage_id"]: json.loads(x)["labels"] for x in ann.read_text(encoding="utf-8").splitlines()}
    assert sum("talent_teams" in final[p] for p in sets["passages"]) == 4
    assert len(sets["passages"]) == 10
    order = [json.loads(x)["passage_id"] for x in (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sets["passages"] == sorted(sets["passages"], key=order.index)
    ins = {d: [json.loads(x) for x in (rd / d / "in.jsonl").read_text(encoding="utf-8").splitlines()] for d in
           ("A1", "A2", "B1", "B2")}
    assert [r["passage_id"] for r in ins["A1"]] == [r["passage_id"] for r in ins["B1"]]
    assert [r["passage_id"] for r in ins["A1"] + ins["A2"]] == sets["passages"]
    assert not any("labels" in r for rows in ins.values() for r in rows)  # coders never see the record
    with pytest.raises(SystemExit, match="laid out once"):
        make_reread_sample.main()


def test_compare_counts_consensus_changes_per_stratum(monkeypatch, fake_repo, fake_corpus, tmp_path):
    rd = tmp_path / "gf"
    ann = lay_out(monkeypatch, fake_repo, fake_corpus, rd)
    final = {json.loads(x)["passage_id"]: json.loads(x)["labels"] for x in ann.read_text(encoding="utf-8").splitlines()}
    sets = json.loads((rd / "sets.json").read_text())
    ids = sets["passages"]
    with_ids = [p for p in ids if "talent_teams" in final[p]]
    without_ids = [p for p in ids if "talent_teams" not in final[p]]
    # Invented re-readings: both re-readers add talent_teams to two negatives; they split on a third;
    # both drop it from one positive.
    reading = {p: set(final[p]) for p in ids}
    for p in without_ids[:2]:
        reading[p].add("talent_teams")
    reading[with_ids[0]].discard("talent_teams")
    split = without_ids[2]
    (rd / "sets.json").write_text(json.dumps({**sets, "annotations": str(ann)}))
    for d in ("A1", "A2", "B1", "B2"):
        rows = [json.loads(x)["passage_id"] for x in (rd / d / "in.jsonl").read_text(encoding="utf-8").splitlines()]
        with (rd / d / "out.jsonl").open("w", encoding="utf-8") as f:
            for p in rows:
                labels = set(reading[p])
                if p == split and d.startswith("B"):
                    labels.add("talent_teams")
                f.write(json.dumps({"passage_id": p, "labels": sorted(labels)}) + "\n")
    res = reread_compare.compare(rd, str(fake_corpus))
    tt = res["categories"]["talent_teams"]
    assert res["read_twice"] == 10
    assert tt["strata"]["without"] == {**tt["strata"]["without"], "passages": 6, "rereaders_agree": 5,
                                       "consensus_differs_from_final": 2, "rereaders_split": 1}
    assert tt["strata"]["with"]["consensus_differs_from_final"] == 1
    assert tt["strata"]["with"]["rate"] == 0.25
    pop = res["population"]
    assert tt["estimated_changes_in_population"] == {"removed_from_with": round(0.25 * pop["with"]),
                                                     "added_to_without": round(0.4 * pop["without"])}
    assert tt["rereaders_kappa"] < 1.0
    assert res["categories"]["investment_channels"]["rereaders_kappa"] == 1.0
    assert "talent_teams" in reread_compare.to_markdown(res)


def test_wilson_and_kappa():
    lo, hi = reread_compare.wilson(0, 50)
    assert lo == 0.0 and 0.05 < hi < 0.09
    assert reread_compare.kappa([True, False, True, False], [True, False, True, False]) == 1.0
    assert reread_compare.kappa([True, False], [False, True]) == -1.0


def test_category_reread_layout_hides_the_category_and_apply_changes_only_it(monkeypatch, fake_repo, fake_corpus,
                                                                            tmp_path):
    import category_reread

    docs = {json.loads(x)["doc_id"] for x in (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines()}
    (fake_corpus / "documents.jsonl").write_text(
        "".join(json.dumps({"doc_id": d, "title": f"文件{d}"}, ensure_ascii=False) + "\n" for d in sorted(docs)),
        encoding="utf-8")
    monkeypatch.setenv("POLICYCLF_HOME", str(fake_repo))
    (fake_repo / "data" / "annotated" / "rounds").mkdir()
    ann = fake_repo / "data" / "annotated" / "six_regions.jsonl"
    before = {json.loads(x)["passage_id"]: json.loads(x) for x in ann.read_text(encoding="utf-8").splitlines()}
    rd = tmp_path / "tt"
    cat = "talent_teams"
    monkeypatch.setattr(sys, "argv", ["x", "layout", str(rd), "--category", cat, "--doc-type", "regulation",
                                      "--sets", "six_regions", "--per-reader", "16", "--double", "0.25",
                                      "--corpus", str(fake_corpus)])
    category_reread.main()
    sets = json.loads((rd / "sets.json").read_text())
    assert len(sets["passages"]) == 48 and len(sets["double"]) == 12
    rows = {}
    for d in sorted(p for p in rd.iterdir() if p.is_dir()):
        for x in (d / "in.jsonl").read_text(encoding="utf-8").splitlines():
            r = json.loads(x)
            assert cat not in r["other_codes"]["labels"] and "labels" not in r
            assert set(r["other_codes"]["labels"]) == set(before[r["passage_id"]]["labels"]) - {cat}
            rows.setdefault(d.name[0], []).append(r["passage_id"])
    assert sorted(rows["A"]) == sorted(sets["passages"]) and sorted(rows["B"]) == sorted(sets["double"])

    # invented decisions: the A readers add talent_teams everywhere; B readers agree except on one passage
    split = sets["double"][0]
    for d in sorted(p for p in rd.iterdir() if p.is_dir()):
        ids = [json.loads(x)["passage_id"] for x in (d / "in.jsonl").read_text(encoding="utf-8").splitlines()]
        (d / "out.jsonl").write_text("".join(json.dumps(
            {"passage_id": p, "applies": not (d.name[0] == "B" and p == split),
             "subcodes": [] if (d.name[0] == "B" and p == split) else ["talent_introduction"]}) + "\n" for p in ids))
    monkeypatch.setattr(sys, "argv", ["x", "apply", str(rd), "--name", "ttr"])
    with pytest.raises(SystemExit, match="1 passages are not decided"):
        category_reread.main()
    monkeypatch.setattr(sys, "argv", ["x", "disagreements", str(rd), "--corpus", str(fake_corpus)])
    category_reread.main()
    assert [json.loads(x)["passage_id"] for x in (rd / "J" / "in.jsonl").read_text().splitlines()] == [split]
    (rd / "J" / "out.jsonl").write_text(json.dumps({"passage_id": split, "applies": False, "subcodes": []}) + "\n")
    monkeypatch.setattr(sys, "argv", ["x", "apply", str(rd), "--name", "ttr"])
    category_reread.main()
    after = {json.loads(x)["passage_id"]: json.loads(x) for x in ann.read_text(encoding="utf-8").splitlines()}
    for pid, rec in after.items():
        assert set(rec["labels"]) - {cat} == set(before[pid]["labels"]) - {cat}  # other categories untouched
        assert rec["text_sha1"] == before[pid]["text_sha1"]
        assert (cat in rec["labels"]) == (pid != split)
    log = [json.loads(x) for x in (fake_repo / "data" / "annotated" / "rounds" / "ttr.readjudicated.jsonl")
           .read_text().splitlines()]
    assert len(log) == 48 and sum(not r["kept"] for r in log) == sum(
        (cat in after[p]["labels"]) != (cat in before[p]["labels"]) or
        sorted(after[p]["subcodes"]) != sorted(before[p]["subcodes"]) for p in after)
    summary = json.loads((fake_repo / "data" / "annotated" / "rounds" / "ttr.summary.json").read_text())
    assert summary["judged"] == 1 and summary["agreement"]["read_twice"] == 12
    with pytest.raises(SystemExit, match="applied already"):
        category_reread.main()


def test_category_reread_refuses_subcodes_of_another_category(tmp_path):
    import category_reread

    d = tmp_path / "A1"
    d.mkdir()
    (d / "out.jsonl").write_text(json.dumps({"passage_id": "x", "applies": True, "subcodes": ["talent_introduction"]}))
    with pytest.raises(SystemExit, match="do not fit"):
        category_reread._decisions(d, "government_functions")
