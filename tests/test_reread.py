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
    assert tt["estimated_changes_in_population"] == {"removed": round(0.25 * pop["with"]),
                                                     "added": round(0.4 * pop["without"])}
    assert tt["rereaders_kappa"] < 1.0
    assert res["categories"]["investment_channels"]["rereaders_kappa"] == 1.0
    assert "talent_teams" in reread_compare.to_markdown(res)


def test_wilson_and_kappa():
    lo, hi = reread_compare.wilson(0, 50)
    assert lo == 0.0 and 0.05 < hi < 0.09
    assert reread_compare.kappa([True, False, True, False], [True, False, True, False]) == 1.0
    assert reread_compare.kappa([True, False], [False, True]) == -1.0


def _with_subcodes(path):
    """Give every record of an annotation file one sub-code per label (the first of its category)."""
    from policyclf.labels import SUBCODE_TO_CATEGORY

    first = {}
    for sub, cat in SUBCODE_TO_CATEGORY.items():
        first.setdefault(cat, sub)
    rows = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    for k, r in enumerate(rows):
        r["subcodes"] = [first[c] for c in r["labels"]]
        r["note"] = f"n{k}" if k % 3 == 0 else ""
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return rows


def test_category_reread_layout_hides_the_category_and_apply_changes_only_it(monkeypatch, fake_repo, fake_corpus,
                                                                            tmp_path):
    import category_reread
    from policyclf.labels import SUBCODE_TO_CATEGORY

    docs = {json.loads(x)["doc_id"] for x in (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines()}
    (fake_corpus / "documents.jsonl").write_text(
        "".join(json.dumps({"doc_id": d, "title": f"文件{d}"}, ensure_ascii=False) + "\n" for d in sorted(docs)),
        encoding="utf-8")
    monkeypatch.setenv("POLICYCLF_HOME", str(fake_repo))
    (fake_repo / "data" / "annotated" / "rounds").mkdir()
    ann = fake_repo / "data" / "annotated" / "six_regions.jsonl"
    test_file = fake_repo / "data" / "annotated" / "other_provinces_test.jsonl"
    before_rows = _with_subcodes(ann)
    test_before = _with_subcodes(test_file)  # work reports only: outside --doc-type regulation, never read
    before = {r["passage_id"]: r for r in before_rows}
    rd = tmp_path / "tt"
    cat = "talent_teams"
    monkeypatch.setattr(sys, "argv", ["x", "layout", str(rd), "--category", cat, "--doc-type", "regulation",
                                      "--sets", "six_regions", "test", "--per-reader", "16", "--double", "0.25",
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
            assert not any(SUBCODE_TO_CATEGORY[x] == cat for x in r["other_codes"]["subcodes"])
            rows.setdefault(d.name[0], []).append(r["passage_id"])
    assert sorted(rows["A"]) == sorted(sets["passages"]) and sorted(rows["B"]) == sorted(sets["double"])

    # invented decisions: the A readers say talent_teams applies everywhere; B readers agree except on one passage
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
    # a J decision for a passage that is no disagreement is refused
    other = next(p for p in sets["passages"] if p != split)
    (rd / "J" / "out.jsonl").write_text(json.dumps({"passage_id": split, "applies": False, "subcodes": []}) + "\n"
                                        + json.dumps({"passage_id": other, "applies": False, "subcodes": []}) + "\n")
    monkeypatch.setattr(sys, "argv", ["x", "apply", str(rd), "--name", "ttr"])
    with pytest.raises(SystemExit, match="not in J/in.jsonl"):
        category_reread.main()
    (rd / "J" / "out.jsonl").write_text(json.dumps({"passage_id": split, "applies": False, "subcodes": []}) + "\n")
    category_reread.main()
    after_rows = [json.loads(x) for x in ann.read_text(encoding="utf-8").splitlines()]
    assert [r["passage_id"] for r in after_rows] == [r["passage_id"] for r in before_rows]  # order kept
    assert [json.loads(x) for x in test_file.read_text(encoding="utf-8").splitlines()] == test_before  # not read
    for old, new in zip(before_rows, after_rows):
        assert new["text_sha1"] == old["text_sha1"] and new["coder"] == old["coder"]
        assert set(new["labels"]) - {cat} == set(old["labels"]) - {cat}  # other categories untouched
        assert [x for x in new["subcodes"] if SUBCODE_TO_CATEGORY[x] != cat] == \
            [x for x in old["subcodes"] if SUBCODE_TO_CATEGORY[x] != cat]
        assert all(SUBCODE_TO_CATEGORY[x] in new["labels"] for x in new["subcodes"])
        assert (cat in new["labels"]) == (new["passage_id"] != split)
        if new == old:
            continue
        assert new["readjudicated"] == ["ttr"] and new["note"].startswith(old["note"]) and "ttr: talent_teams" in new["note"]
    log = [json.loads(x) for x in (fake_repo / "data" / "annotated" / "rounds" / "ttr.readjudicated.jsonl")
           .read_text().splitlines()]
    changed = {o["passage_id"] for o, n in zip(before_rows, after_rows) if o != n}
    assert len(log) == 48 and {r["passage_id"] for r in log if not r["kept"]} == changed
    assert all(r["before"]["note"] == before[r["passage_id"]]["note"] for r in log)
    summary = json.loads((fake_repo / "data" / "annotated" / "rounds" / "ttr.summary.json").read_text())
    assert summary["judged"] == 1 and summary["agreement"]["read_twice"] == 12
    with pytest.raises(SystemExit, match="applied already"):
        category_reread.main()


def test_compare_weights_by_the_strata_of_the_draw_not_of_a_later_version(monkeypatch, fake_repo, fake_corpus,
                                                                          tmp_path):
    rd = tmp_path / "gf"
    ann = lay_out(monkeypatch, fake_repo, fake_corpus, rd)
    sets = json.loads((rd / "sets.json").read_text())
    assert sets["population"] == {"with": 12, "without": 36} and len(sets["strata"]) == 10
    rows = [json.loads(x) for x in ann.read_text(encoding="utf-8").splitlines()]
    final = {r["passage_id"]: set(r["labels"]) for r in rows}
    for d in ("A1", "A2", "B1", "B2"):
        ids = [json.loads(x)["passage_id"] for x in (rd / d / "in.jsonl").read_text(encoding="utf-8").splitlines()]
        (rd / d / "out.jsonl").write_text("".join(json.dumps({"passage_id": p, "labels": sorted(final[p] | {"talent_teams"})})
                                                  + "\n" for p in ids))
    # a later version of the records gives talent_teams to every sampled passage: the strata must not move
    later = tmp_path / "later.jsonl"
    later.write_text("".join(json.dumps({**r, "labels": sorted(set(r["labels"]) | {"talent_teams"})}) + "\n"
                             for r in rows), encoding="utf-8")
    now = reread_compare.compare(rd, str(fake_corpus))
    then = reread_compare.compare(rd, str(fake_corpus), later)
    assert now["population"] == then["population"] == {"with": 12, "without": 36}
    tt_now, tt_then = now["categories"]["talent_teams"], then["categories"]["talent_teams"]
    assert tt_now["strata"]["without"]["consensus_adds"] == 6 and tt_now["estimated_changes_in_population"] == \
        {"added": 36, "removed": 0}
    assert tt_then["strata"]["without"]["passages"] == 6 and tt_then["estimated_changes_in_population"] == \
        {"added": 0, "removed": 0}


def test_category_reread_refuses_subcodes_of_another_category(tmp_path):
    import category_reread

    d = tmp_path / "A1"
    d.mkdir()
    (d / "out.jsonl").write_text(json.dumps({"passage_id": "x", "applies": True, "subcodes": ["talent_introduction"]}))
    with pytest.raises(SystemExit, match="do not fit"):
        category_reread._decisions(d, "government_functions")


def test_data_card_tables_count_the_final_files(monkeypatch, fake_repo, fake_corpus, capsys):
    import data_card_tables

    from policyclf.corpus import text_sha1

    # two pool rounds and the four extension sources, next to the fixture's six-region and test records
    extra = [("beijing-reg-eeee0005-001", "beijing", "six_regions_pool", "regulation", "al1", ["talent_teams"]),
             ("beijing-reg-eeee0005-002", "beijing", "six_regions_pool", "regulation", "r0", []),
             ("hebei-reg-ffff0006-001", "hebei", "extension_pool", "regulation", "xr1", ["government_functions"]),
             ("national-reg-ffff0007-001", "national", "extension_pool", "regulation", "xn1", []),
             ("hebei-gwr-ffff0008-001", "hebei", "extension_pool", "work_report", "xw1", ["talent_teams"]),
             ("national-gwr-ffff0009-001", "national", "extension_pool", "work_report", "xw0", [])]
    adir = fake_repo / "data" / "annotated"
    with (fake_corpus / "passages.jsonl").open("a", encoding="utf-8") as f:
        for pid, region, pool, doc_type, _, _ in extra:
            f.write(json.dumps({"passage_id": pid, "doc_id": pid.rsplit("-", 1)[0], "region": region,
                                "doc_type": doc_type, "pool": pool, "seq": 1, "heading": "",
                                "text": f"文本{pid}"}, ensure_ascii=False) + "\n")
    for file, pool in (("six_regions_pool.jsonl", "six_regions_pool"), ("extension_pool.jsonl", "extension_pool")):
        (adir / file).write_text("".join(
            json.dumps({"passage_id": pid, "text_sha1": text_sha1(f"文本{pid}"), "labels": labels, "subcodes": [],
                        "coder": "A", "note": "", "round": rnd}) + "\n"
            for pid, _, p, _, rnd, labels in extra if p == pool), encoding="utf-8")
    monkeypatch.setenv("POLICYCLF_HOME", str(fake_repo))
    monkeypatch.setattr(sys, "argv", ["x", "--corpus", str(fake_corpus)])
    data_card_tables.main()
    out = capsys.readouterr().out

    def cells(prefix):
        line = next(x for x in out.splitlines() if x.startswith(prefix))
        return [int(c.strip().replace(",", "")) for c in line.strip("|").split("|")[1:]]

    six = [json.loads(x) for x in (adir / "six_regions.jsonl").read_text(encoding="utf-8").splitlines()]
    cats = ("institutional_system", "government_functions", "social_organizations", "service_mechanisms",
            "investment_channels", "talent_teams", "cooperation_platforms")
    assert cells("| six_regions (v1) |") == [len(six), *(sum(c in r["labels"] for r in six) for c in cats),
                                              sum(not r["labels"] for r in six)]
    assert cells("| al1 |") == [1, 0, 0, 0, 0, 0, 1, 0, 0] and cells("| r0 |") == [1, 0, 0, 0, 0, 0, 0, 0, 1]
    assert cells("| provincial_laws |") == [1, 0, 1, 0, 0, 0, 0, 0, 0]
    assert cells("| national_laws |")[0] == cells("| state_council_reports |")[0] == 1
    assert cells("| provincial_work_reports |") == [1, 0, 0, 0, 0, 0, 1, 0, 0]
    assert cells("| **all training gold** |")[0] == len(six) + 6
    test = [json.loads(x) for x in (adir / "other_provinces_test.jsonl").read_text(encoding="utf-8").splitlines()]
    assert cells("| other_provinces_test")[0] == len(test)
