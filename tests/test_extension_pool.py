"""The v3 extension pool (other provinces' and national texts): checked, trained on in every
leave-one-region-out fold, never tested on, chosen by a config key, picked by `data suggest`."""

import json

import pytest
from typer.testing import CliRunner

from conftest import TOY
from policyclf.cli import app
from policyclf.config import load_config
from policyclf.corpus import check_annotations, text_sha1
from policyclf.errors import DataError
from policyclf.protocol import protocol_splits, unseen_examples
from policyclf.training import label_counts, training_examples

runner = CliRunner()


@pytest.fixture()
def ext_repo(fake_repo, fake_corpus):
    """The fake corpus plus an extension_pool (gansu regulations, national work reports), half of it coded."""
    rows = [json.loads(x) for x in (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    ext = []
    for region, kind, code in (("gansu", "reg", "ffff0006"), ("national", "gwr", "ffff0007")):
        for k, (text, labels) in enumerate(TOY, 1):
            ext.append(({"passage_id": f"{region}-{kind}-{code}-{k:03d}", "doc_id": f"{region}-{kind}-{code}",
                         "region": region, "doc_type": "regulation" if kind == "reg" else "work_report",
                         "pool": "extension_pool", "seq": k, "heading": "", "text": f"{text}（{region}扩展{k}）"},
                        labels))
    rows += [p for p, _ in ext]
    (fake_corpus / "passages.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                encoding="utf-8")
    coded = [p for p in ext if p[0]["seq"] % 2 == 1]
    (fake_repo / "data" / "annotated" / "extension_pool.jsonl").write_text("".join(
        json.dumps({"passage_id": p["passage_id"], "text_sha1": text_sha1(p["text"]), "labels": labels,
                    "subcodes": [], "coder": "A", "note": "", "round": "xr1"}, ensure_ascii=False) + "\n"
        for p, labels in coded), encoding="utf-8")
    return fake_repo


def config(repo, *pools, annotations=("six_regions.jsonl", "extension_pool.jsonl"), exclude=()):
    cfg = repo / "cfg.toml"
    files = ", ".join(f'"data/annotated/{a}"' for a in annotations)
    cfg.write_text(f'[data]\nannotations = [{files}]\npools = {json.dumps(list(pools))}\n'
                   f'exclude_sources = {json.dumps(list(exclude))}\n'
                   '[model]\nbackend = "tfidf"\n[report]\ntest_annotations = "data/annotated/other_provinces_test.jsonl"\n',
                   encoding="utf-8")
    return load_config(cfg)


def test_check_counts_extension_per_pool_region_and_type(ext_repo, fake_corpus):
    rep = check_annotations(ext_repo, fake_corpus)
    n = len(TOY)
    assert rep.files["extension_pool.jsonl"] == (n + 1) // 2 * 2
    assert rep.coverage["extension_pool"] == ((n + 1) // 2 * 2, 2 * n)
    assert rep.by_source[("extension_pool", "gansu", "regulation")]["_n"] == (n + 1) // 2
    assert rep.by_source[("extension_pool", "national", "work_report")]["_n"] == (n + 1) // 2
    assert ("six_regions", "beijing", "regulation") in rep.by_source
    res = runner.invoke(app, ["data", "check", "--corpus", str(fake_corpus), "--root", str(ext_repo)])
    assert res.exit_code == 0, res.output
    assert "coverage extension_pool" in res.output and "national" in res.output


def test_extension_is_trained_in_every_loro_fold_and_never_tested(ext_repo, fake_corpus):
    cfg = config(ext_repo)
    train = training_examples(cfg, str(fake_corpus))
    ext = {e.passage_id for e in train if e.passage.pool == "extension_pool"}
    assert ext  # the extension records are part of the training data
    splits = protocol_splits(cfg, train, unseen_examples(cfg, str(fake_corpus)))
    names = [name for name, _, _ in splits]
    assert names == ["loro-beijing", "loro-shanghai", "loro-guangdong", "loro-zhejiang", "loro-jiangsu",
                     "loro-shandong", "unseen"]
    for name, train_set, test_set in splits:
        assert ext <= {e.passage_id for e in train_set}, name
        assert not ext & {e.passage_id for e in test_set}, name
        if name == "unseen":
            assert {e.passage.pool for e in test_set} == {"other_provinces"}
        else:
            assert {e.passage.pool for e in test_set} <= {"six_regions"}
    assert label_counts(train)["pools"] == {"six_regions": 3 * 2 * len(TOY), "extension_pool": len(ext)}


def test_pools_key_keeps_a_six_region_only_model_one_line_away(ext_repo, fake_corpus):
    six_only = training_examples(config(ext_repo, "six_regions"), str(fake_corpus))
    assert {e.passage.pool for e in six_only} == {"six_regions"}
    both = training_examples(config(ext_repo), str(fake_corpus))
    assert len(both) > len(six_only)


def test_the_unseen_province_pool_is_never_trained_on(ext_repo, fake_corpus):
    with pytest.raises(DataError, match="never trained on"):
        training_examples(config(ext_repo, "other_provinces"), str(fake_corpus))
    with pytest.raises(DataError, match="unseen-province test pool"):
        training_examples(config(ext_repo, annotations=("six_regions.jsonl", "other_provinces_test.jsonl")),
                          str(fake_corpus))


def test_suggest_from_extension_work_reports_only(ext_repo, fake_corpus, tmp_path):
    out = tmp_path / "picks.jsonl"
    res = runner.invoke(app, ["data", "suggest", "-n", "50", "-o", str(out), "--pool", "extension_pool",
                              "--doc-type", "work_report", "--strategy", "random", "--corpus", str(fake_corpus),
                              "--root", str(ext_repo), "--quiet"])
    assert res.exit_code == 0, res.output
    picks = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    coded = {json.loads(x)["passage_id"] for x in
             (ext_repo / "data" / "annotated" / "extension_pool.jsonl").read_text(encoding="utf-8").splitlines()}
    assert picks and all(p["passage_id"].startswith("national-gwr-") for p in picks)
    assert not coded & {p["passage_id"] for p in picks}
    assert len(picks) == len(TOY) // 2  # the uncoded national passages only
    bad = runner.invoke(app, ["data", "suggest", "-n", "5", "-o", str(tmp_path / "x.jsonl"), "--pool",
                              "extension_pool", "--doc-type", "notice", "--strategy", "random", "--corpus",
                              str(fake_corpus), "--root", str(ext_repo), "--quiet"])
    assert bad.exit_code == 1 and "no document type 'notice'" in bad.output


def test_agreement_on_the_extension_set(ext_repo, fake_corpus, monkeypatch):
    adir = ext_repo / "data" / "annotated"
    final = [json.loads(x) for x in (adir / "extension_pool.jsonl").read_text(encoding="utf-8").splitlines()]
    double = [{**r, "coder": c} for r in final[:4] for c in ("A", "B")]
    (adir / "double_coded_extension.jsonl").write_text("".join(json.dumps(r) + "\n" for r in double))
    monkeypatch.setenv("POLICYCLF_HOME", str(ext_repo))
    res = runner.invoke(app, ["data", "agreement", "--set", "extension", "--corpus", str(fake_corpus)])
    assert res.exit_code == 0, res.output
    data = json.loads((adir / "agreement_extension.json").read_text())
    assert data["overall"]["passages"] == 4 and data["per_round"]["xr1"]["overall"]["passages"] == 4
    bad = runner.invoke(app, ["data", "agreement", "--set", "v9", "--corpus", str(fake_corpus)])
    assert bad.exit_code == 1 and "unknown --set" in bad.output


def test_an_extension_source_can_be_left_out(ext_repo, fake_corpus):
    full = training_examples(config(ext_repo), str(fake_corpus))
    assert label_counts(full)["extension_sources"] == {"provincial_laws": (len(TOY) + 1) // 2,
                                                       "state_council_reports": (len(TOY) + 1) // 2}
    without = training_examples(config(ext_repo, exclude=["state_council_reports"]), str(fake_corpus))
    assert {e.passage.region for e in without if e.passage.pool == "extension_pool"} == {"gansu"}
    assert len(full) - len(without) == (len(TOY) + 1) // 2
    with pytest.raises(Exception, match="exclude_sources"):
        config(ext_repo, exclude=["provincial_reports"])
