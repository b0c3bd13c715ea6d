import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from policyclf.corpus import check_annotations, load_examples, load_passages, read_annotations, resolve_corpus_dir, text_sha1
from policyclf.cli import app
from policyclf.errors import DataError


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _rec(passages, pid, labels=(), subcodes=(), sha=None):
    return {"passage_id": pid, "text_sha1": sha or text_sha1(passages[pid].text), "labels": list(labels),
            "subcodes": list(subcodes), "coder": "A", "note": ""}


def test_corpus_resolution_order(fake_corpus, monkeypatch, tmp_path):
    monkeypatch.setenv("POLICYCLF_CORPUS", str(fake_corpus))
    assert resolve_corpus_dir() == fake_corpus
    assert resolve_corpus_dir(fake_corpus) == fake_corpus
    with pytest.raises(DataError, match="POLICYCLF_CORPUS"):
        resolve_corpus_dir(tmp_path / "nowhere")


def test_valid_records_join_with_text(fake_corpus, tmp_path):
    passages = load_passages(fake_corpus)
    pid = next(iter(passages))
    f = _write(tmp_path / "a.jsonl", [_rec(passages, pid, ["investment_channels"], ["government_funding"])])
    (ex,) = load_examples([f], passages)
    assert ex.text == passages[pid].text and ex.labels == ("investment_channels",)


@pytest.mark.parametrize("mutate, message", [
    (lambda r: r.update(passage_id="beijing-reg-ffffffff-999"), "line 2: unknown passage_id 'beijing-reg-ffffffff-999'"),
    (lambda r: r.update(labels=["talent"]), "line 2: unknown label 'talent' — expected one of institutional_system"),
    (lambda r: r.update(subcodes=["team_building"]), "line 2: sub-code 'team_building' without its category 'talent_teams'"),
    (lambda r: r.update(subcodes=["teams"], labels=["talent_teams"]), "line 2: unknown sub-code 'teams'"),
    (lambda r: r.update(text_sha1="0" * 40), "line 2: text_sha1 of .* does not match the corpus text"),
])
def test_refusals_name_file_line_and_value(fake_corpus, tmp_path, mutate, message):
    passages = load_passages(fake_corpus)
    ids = list(passages)
    bad = _rec(passages, ids[1])
    mutate(bad)
    f = _write(tmp_path / "bad.jsonl", [_rec(passages, ids[0]), bad])
    with pytest.raises(DataError, match=message) as info:
        read_annotations(f, passages)
    assert "bad.jsonl" in str(info.value)


def test_duplicate_final_records_refused_but_double_coding_allowed(fake_corpus, tmp_path):
    passages = load_passages(fake_corpus)
    pid = next(iter(passages))
    a, b = _rec(passages, pid), {**_rec(passages, pid), "coder": "B"}
    f = _write(tmp_path / "x.jsonl", [a, b])
    with pytest.raises(DataError, match="line 2: duplicate record"):
        read_annotations(f, passages)
    assert len(read_annotations(f, passages, final=False)) == 2


def test_invalid_json_line(fake_corpus, tmp_path):
    passages = load_passages(fake_corpus)
    f = tmp_path / "broken.jsonl"
    f.write_text('{"passage_id": \n', encoding="utf-8")
    with pytest.raises(DataError, match="broken.jsonl line 1: not valid JSON"):
        read_annotations(f, passages)


def test_check_counts_per_region(fake_repo, fake_corpus):
    rep = check_annotations(fake_repo, fake_corpus)
    assert rep.files == {"other_provinces_test.jsonl": 8, "six_regions.jsonl": 48}
    assert rep.counts["beijing"]["_n"] == 16
    assert rep.counts["beijing"]["investment_channels"] == 4
    assert rep.counts["beijing"]["_none"] == 4
    assert rep.coverage["six_regions"] == (48, 48)


def test_data_check_cli_fails_with_one_line(fake_repo, fake_corpus):
    from typer.testing import CliRunner

    from policyclf.cli import app

    runner = CliRunner()
    ok = runner.invoke(app, ["data", "check", "--root", str(fake_repo), "--corpus", str(fake_corpus)])
    assert ok.exit_code == 0, ok.output
    assert "six_regions.jsonl: 48 records OK" in ok.output
    f = fake_repo / "data" / "annotated" / "six_regions.jsonl"
    lines = f.read_text(encoding="utf-8").splitlines()
    rec = json.loads(lines[3])
    rec["labels"] = ["nonsense"]
    lines[3] = json.dumps(rec)
    f.write_text("\n".join(lines) + "\n", encoding="utf-8")
    bad = runner.invoke(app, ["data", "check", "--root", str(fake_repo), "--corpus", str(fake_corpus)])
    assert bad.exit_code == 1
    assert "six_regions.jsonl line 4: unknown label 'nonsense'" in bad.output
    assert "Traceback" not in bad.output


def test_export_hf_dataset_dict(fake_repo, fake_corpus, tmp_path):
    datasets = pytest.importorskip("datasets")
    from policyclf.labels import CATEGORIES

    out = tmp_path / "hf"
    res = CliRunner().invoke(app, ["data", "export", "--format", "hf", "-o", str(out), "--corpus", str(fake_corpus)],
                             env={"POLICYCLF_HOME": str(fake_repo)})
    assert res.exit_code == 0, res.output
    dd = datasets.load_from_disk(str(out))
    assert dd["train"].num_rows == 48 and dd["test"].num_rows == 8
    feature = dd["train"].features["labels"]
    assert feature.feature.names == list(CATEGORIES)
    row = dd["train"][0]
    assert row["region"] == "beijing" and [CATEGORIES[i] for i in row["labels"]] == ["investment_channels"]
    again = CliRunner().invoke(app, ["data", "export", "--format", "hf", "-o", str(out), "--corpus", str(fake_corpus)],
                               env={"POLICYCLF_HOME": str(fake_repo)})
    assert again.exit_code == 1 and "already exists" in again.output


def test_agreement_json_has_no_nan(fake_repo, fake_corpus, tmp_path):
    """A category nobody coded has an undefined kappa: written as null, never as NaN."""
    six = [json.loads(x) for x in (fake_repo / "data" / "annotated" / "six_regions.jsonl").read_text().splitlines()]
    double = [{**r, "coder": c, "round": "al1"} for r in six[:10] for c in ("A", "B")]
    (tmp_path / "double.jsonl").write_text("".join(json.dumps(r) + "\n" for r in double))
    out = tmp_path / "agreement.json"
    res = CliRunner().invoke(app, ["data", "agreement", "--double", str(tmp_path / "double.jsonl"), "--final",
                                   str(fake_repo / "data" / "annotated" / "six_regions.jsonl"), "-o", str(out),
                                   "--corpus", str(fake_corpus)])
    assert res.exit_code == 0, res.output
    text = out.read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["per_category"]["social_organizations"]["human_ceiling_f1"] is None  # no positives: undefined
    assert data["per_round"]["al1"]["overall"]["passages"] == 10
