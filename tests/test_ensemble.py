"""The ensemble backend: the pooling rule, training and saving, assembling saved models, and the report."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from conftest import toy_data
from policyclf.cli import app
from policyclf.errors import ModelError
from policyclf.labels import CATEGORIES
from policyclf.models.base import load_model
from policyclf.models.ensemble import EnsembleClassifier, combine_prediction_rows, combine_scores
from policyclf.models.tfidf import TfidfClassifier


def test_one_member_keeps_its_own_decisions():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(50, 7))
    t = np.array([0.3, 0.5, 0.7, 0.2, 0.9, 0.45, 0.6])
    combined = combine_scores([p], [t])
    np.testing.assert_array_equal(combined >= 0.5, p >= t)


def test_centred_logits_are_averaged_with_the_weights():
    def logit(x):
        return np.log(x / (1 - x))

    p1, t1 = np.array([[0.8] * 7]), np.full(7, 0.5)
    p2, t2 = np.array([[0.3] * 7]), np.full(7, 0.6)
    z_equal = (logit(0.8) - 0 + logit(0.3) - logit(0.6)) / 2
    np.testing.assert_allclose(combine_scores([p1, p2], [t1, t2]), 1 / (1 + np.exp(-z_equal)))
    z_weighted = (3 * logit(0.8) + 1 * (logit(0.3) - logit(0.6))) / 4
    np.testing.assert_allclose(combine_scores([p1, p2], [t1, t2], [3, 1]), 1 / (1 + np.exp(-z_weighted)))
    # one member far past its threshold outvotes one just under it, and the reverse
    assert combine_scores([p1, np.array([[0.55] * 7])], [t1, t2])[0, 0] > 0.5
    assert combine_scores([np.array([[0.52] * 7]), np.array([[0.05] * 7])], [t1, t2])[0, 0] < 0.5
    # scores of exactly 0 or 1 stay finite
    assert np.isfinite(combine_scores([np.zeros((1, 7)), np.ones((1, 7))], [t1, t2])).all()


def test_bad_weights_and_shapes_are_refused():
    p, t = np.full((2, 7), 0.5), np.full(7, 0.5)
    with pytest.raises(ModelError, match="weights"):
        combine_scores([p, p], [t, t], [1.0])
    with pytest.raises(ModelError, match="weights"):
        combine_scores([p, p], [t, t], [1.0, 0.0])
    with pytest.raises(ModelError, match="shapes"):
        combine_scores([p, p[:1]], [t, t])
    with pytest.raises(ModelError, match="other than 'ensemble'"):
        EnsembleClassifier(["ensemble"])


def test_prediction_rows_combine_only_matching_passages():
    a = {"x": {"scores": [0.9] * 7, "thresholds": [0.5] * 7, "train_seconds": 10},
         "y": {"scores": [0.1] * 7, "thresholds": [0.5] * 7, "train_seconds": 10}}
    b = {"x": {"scores": [0.6] * 7, "thresholds": [0.7] * 7, "train_seconds": 2},
         "y": {"scores": [0.2] * 7, "thresholds": [0.1] * 7, "train_seconds": 2}}
    rows = combine_prediction_rows([a, b])
    assert set(rows) == {"x", "y"} and rows["x"]["train_seconds"] == 12
    assert rows["x"]["scores"][0] > 0.5 and rows["y"]["scores"][0] < 0.5
    with pytest.raises(ModelError, match="different passages"):
        combine_prediction_rows([a, {"x": b["x"]}])


def _ensemble_config(tmp_path, tiny_bert_dir, members='["bert", "tfidf"]'):
    from policyclf.config import load_config

    path = tmp_path / "ens.toml"
    path.write_text(
        f'[model]\nbackend = "ensemble"\nbase_model = "{tiny_bert_dir}"\nmax_length = 16\nwindow_stride = 6\n'
        f'trainable_layers = 2\ninference_dtype = "float32"\n'
        f'[training]\nepochs = 2\nbatch_size = 8\nlearning_rate = 5e-3\nhead_learning_rate = 3e-2\npatience = 5\n'
        f'validation_fraction = 0.25\nseed = 3\n'
        f'[baseline]\nthreshold_folds = 2\n[ensemble]\nmembers = {members}\n')
    return load_config(path)


def test_fit_save_load_round_trip_and_members_load_alone(tmp_path, tiny_bert_dir):
    from policyclf.training import build_model

    texts, labels = toy_data(2)
    model = build_model(_ensemble_config(tmp_path, tiny_bert_dir))
    assert [m.backend for m in model.member_models_] == ["bert", "tfidf"]
    model.fit(texts, labels, groups=[str(i % 4) for i in range(len(texts))])
    scores = model.predict_proba(texts)
    members = model.member_models_
    np.testing.assert_allclose(scores, combine_scores([m.predict_proba(texts) for m in members],
                                                      [m.thresholds_ for m in members]))
    model.save(tmp_path / "m", config=model.config_)
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, EnsembleClassifier) and loaded.members == ["bert", "tfidf"]
    lm = loaded.member_models_
    np.testing.assert_allclose(loaded.predict_proba(texts), combine_scores([m.predict_proba(texts) for m in lm],
                                                                           [m.thresholds_ for m in lm]))
    np.testing.assert_allclose(loaded.predict_proba(texts), scores, atol=1e-3)  # BERT layers are stored in fp16
    np.testing.assert_array_equal(loaded.thresholds_, np.full(7, 0.5))
    info = loaded.runtime_info()
    assert set(info["members"]) == {"0-bert", "1-tfidf"} and info["precision"] == "float32" and info["device"] == "cpu"
    alone = load_model(tmp_path / "m" / "members" / "1-tfidf")
    np.testing.assert_array_equal(alone.predict_proba(texts), members[1].predict_proba(texts))
    # a member folder gone is a clear error
    import shutil

    shutil.rmtree(tmp_path / "m" / "members" / "0-bert")
    with pytest.raises(ModelError, match="member 'bert' is missing"):
        load_model(tmp_path / "m")


def _saved_tfidf(path, texts, labels, C=4.0):
    """A saved TF-IDF model; its training-data fingerprint stands for the passages it was trained on."""
    from policyclf.config import Config

    model = TfidfClassifier(threshold_folds=2, C=C).fit(texts, labels, groups=[str(i % 4) for i in range(len(texts))])
    meta = {"training_data": {"fingerprint": f"fp-{len(texts)}", "passages": len(texts), "annotations": ["toy"],
                              "per_category": {c: sum(c in ls for ls in labels) for c in CATEGORIES},
                              "unlabelled": sum(not ls for ls in labels)}}
    return model, model.save(path, extra_meta=meta, config=Config())


def test_assemble_from_saved_models_and_refuse_other_training_data(tmp_path):
    texts, labels = toy_data(2)
    a, da = _saved_tfidf(tmp_path / "a", texts, labels, C=4.0)
    b, db = _saved_tfidf(tmp_path / "b", texts, labels, C=0.5)
    res = CliRunner().invoke(app, ["ensemble", str(da), str(db), "-o", str(tmp_path / "e"), "--weight", "2",
                                   "--weight", "1"])
    assert res.exit_code == 0, res.output
    ens = load_model(tmp_path / "e")
    np.testing.assert_allclose(ens.predict_proba(texts), combine_scores(
        [a.predict_proba(texts), b.predict_proba(texts)], [a.thresholds_, b.thresholds_], [2, 1]))
    meta = json.loads((tmp_path / "e" / "meta.json").read_text())
    assert meta["backend"] == "ensemble" and meta["training_data"]["fingerprint"] == "fp-16"
    assert (tmp_path / "e" / "members" / "0-tfidf" / "tfidf.npz").read_bytes() == (da / "tfidf.npz").read_bytes()
    # the ensemble labels documents like any model
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("\n".join(texts[:8]), encoding="utf-8")
    res = CliRunner().invoke(app, ["predict", str(tmp_path / "docs"), "-o", str(tmp_path / "out.jsonl"),
                                   "--model", str(tmp_path / "e")])
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()]
    assert rows and all(set(r["labels"]) <= set(r["scores"]) for r in rows)
    res = CliRunner().invoke(app, ["label", str(tmp_path / "docs"), "-o", str(tmp_path / "lab"), "--model",
                                   str(tmp_path / "e"), "--workers", "1"])
    assert res.exit_code == 0, res.output
    _, dc = _saved_tfidf(tmp_path / "c", texts[:12], labels[:12])
    res = CliRunner().invoke(app, ["ensemble", str(da), str(dc), "-o", str(tmp_path / "e2")])
    assert res.exit_code != 0 and "different passages" in res.output
    assert not (tmp_path / "e2").exists()


def _report_config(tmp_path, fake_repo, fake_corpus, backends):
    ann = fake_repo / "data" / "annotated"
    path = tmp_path / "report.toml"
    path.write_text(
        f'[data]\ncorpus = "{fake_corpus}"\nannotations = ["{ann / "six_regions.jsonl"}"]\n'
        f'[baseline]\nthreshold_folds = 2\n[ensemble]\nmembers = ["tfidf", "tfidf"]\n'
        f'[report]\nbackends = {json.dumps(backends)}\nbootstrap = 100\n'
        f'test_annotations = "{ann / "other_provinces_test.jsonl"}"\nagreement = "{tmp_path / "none.json"}"\n')
    return path


def test_report_builds_the_ensemble_from_its_members_predictions(tmp_path, fake_repo, fake_corpus):
    out, models = tmp_path / "rep", tmp_path / "models"
    config = _report_config(tmp_path, fake_repo, fake_corpus, ["ensemble"])
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(out)])
    assert res.exit_code != 0 and "no predictions of member(s) tfidf" in res.output
    config = _report_config(tmp_path, fake_repo, fake_corpus, ["tfidf", "ensemble"])
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(out), "--save-models", str(models)])
    assert res.exit_code == 0, res.output
    for split in ("loro-beijing", "unseen"):
        t = {json.loads(line)["passage_id"]: json.loads(line)
             for line in (out / "predictions" / "tfidf" / f"{split}.jsonl").read_text().splitlines()}
        e = [json.loads(line) for line in (out / "predictions" / "ensemble" / f"{split}.jsonl").read_text().splitlines()]
        assert len(e) == len(t) and e[0]["members"] == ["tfidf", "tfidf"]
        for r in e:  # two identical members: the member's own decisions
            same = np.array(r["scores"]) >= 0.5
            assert (same == (np.array(t[r["passage_id"]]["scores"]) >= np.array(t[r["passage_id"]]["thresholds"]))).all()
    report = json.loads((out / "report.json").read_text())
    assert report["backends"]["ensemble"]["loro"]["macro_f1"] == report["backends"]["tfidf"]["loro"]["macro_f1"]
    assert report["comparison"]["loro_macro_f1_ensemble_minus_tfidf"]["documents"]["diff"] == 0
    ens = load_model(models / "ensemble")
    assert ens.members == ["tfidf", "tfidf"]
    assert "ensemble − TF-IDF macro-F1" in (out / "report.html").read_text(encoding="utf-8")


def test_combine_predictions_script_matches_the_library(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import combine_predictions

    rng = np.random.default_rng(1)
    dirs = [tmp_path / "a", tmp_path / "b"]
    for k, d in enumerate(dirs):
        d.mkdir()
        for split in ("loro-x", "loro-y") if k == 0 else ("loro-x",):  # loro-y only in the first member
            with (d / f"{split}.jsonl").open("w") as f:
                for i in range(5):
                    f.write(json.dumps({"passage_id": f"p{i}", "split": split, "train_seconds": 1.0 + k,
                                        "scores": rng.uniform(size=7).round(5).tolist(),
                                        "thresholds": [0.3 + 0.1 * k] * 7}) + "\n")
    assert combine_predictions.combine_dirs(dirs, tmp_path / "e", [2, 1]) == ["loro-x"]
    got = [json.loads(line) for line in (tmp_path / "e" / "loro-x.jsonl").read_text().splitlines()]
    a = [json.loads(line) for line in (dirs[0] / "loro-x.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (dirs[1] / "loro-x.jsonl").read_text().splitlines()]
    want = combine_scores([np.array([r["scores"] for r in a]), np.array([r["scores"] for r in b])],
                          [np.full(7, 0.3), np.full(7, 0.4)], [2, 1])
    np.testing.assert_allclose(np.array([r["scores"] for r in got]), want, atol=1e-5)
    assert [r["passage_id"] for r in got] == [f"p{i}" for i in range(5)] and got[0]["train_seconds"] == 3.0


def test_an_assembled_ensemble_gets_a_model_card_naming_its_members(tmp_path):
    """An assembled ensemble's meta has no saved_at: its card still renders, naming its members."""
    from policyclf.model_card import render_model_card

    texts, labels = toy_data(2)
    _, da = _saved_tfidf(tmp_path / "a", texts, labels, C=4.0)
    _, db = _saved_tfidf(tmp_path / "b", texts, labels, C=0.5)
    assert CliRunner().invoke(app, ["ensemble", str(da), str(db), "-o", str(tmp_path / "e")]).exit_code == 0
    meta = json.loads((tmp_path / "e" / "meta.json").read_text())
    card = render_model_card(tmp_path / "e")
    assert card.startswith("# Model card: e\n") and "Backend `ensemble`." in card
    assert all(f"`{m}`" in card for m in meta["assembled_from"])
    assert "## Validation recorded at training time" in card and "Saved" not in card


@pytest.mark.parametrize("name", ["policyclf-ensemble", "policyclf-student-tfidf"])
def test_shipped_ensembles_hold_byte_identical_copies_of_the_shipped_models(name):
    """Each member under ``members/`` is the model it was assembled from, file for file (git stores them
    once; a retrained member or a rewritten card or error-rate file must be copied into the ensemble too)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    ens = root / "models" / name
    sources = json.loads((ens / "meta.json").read_text(encoding="utf-8"))["assembled_from"]
    members = sorted((ens / "members").iterdir())
    assert len(members) == len(sources) >= 2
    for member, source in zip(members, sources):
        src = root / source
        files = sorted(p.name for p in member.iterdir())
        assert files == sorted(p.name for p in src.iterdir()), member
        for f in files:
            assert (member / f).read_bytes() == (src / f).read_bytes(), f"{member.name}/{f} differs from {source}/{f}"
