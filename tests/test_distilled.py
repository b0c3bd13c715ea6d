"""The distilled backend: a shallower student trained on a teacher's scores, same interface."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import toy_data
from policyclf.errors import ModelError


def _student(tiny_bert_dir, **kw):
    from policyclf.models.distilled import DistilledClassifier

    args = dict(base_model=str(tiny_bert_dir), max_length=16, window_stride=6, trainable_layers=2, epochs=2,
                batch_size=8, learning_rate=5e-3, head_learning_rate=3e-2, patience=5, validation_fraction=0.25,
                seed=3, inference_dtype="float32", student_layers=1, student_epochs=3, student_learning_rate=5e-3,
                student_patience=5, progress=False, device="cpu")
    return DistilledClassifier(**{**args, **kw})


def test_sentence_crops_are_proper_spans_of_their_text():
    from policyclf.models.distilled import sentence_crops

    texts = ["第一句。第二句；第三句！", "只有一句", "甲。乙。"]
    crops = sentence_crops(texts, 3, seed=0)
    assert crops and {i for i, _ in crops} <= {0, 2}  # one sentence: nothing to crop
    for i, span in crops:
        assert span and span in texts[i] and span != texts[i]
    assert crops == sentence_crops(texts, 3, seed=0)


def test_student_is_shallower_learns_from_its_teacher_and_round_trips(tiny_bert_dir, tiny_bert_model, tmp_path):
    from policyclf.models.base import load_model
    from policyclf.models.distilled import DistilledClassifier

    import json
    import shutil

    texts, labels = toy_data(3)
    teacher = shutil.copytree(tiny_bert_model, tmp_path / "teacher")
    meta = json.loads((teacher / "meta.json").read_text())
    meta["validation"] = {"method": "m", "macro_f1": 0.5, "history": [1, 2]}
    (teacher / "meta.json").write_text(json.dumps(meta))
    model = _student(tiny_bert_dir, teacher=str(teacher)).fit(texts, labels)
    assert len(model.student_.encoder_.encoder.layer) == 1  # the tiny base has 2
    assert model.validation_["teacher"] == {"source": str(teacher), "validation": {"method": "m", "macro_f1": 0.5}}
    assert model.validation_["sentence_spans"] == 0  # toy texts are single sentences
    probs = model.predict_proba(texts)
    assert probs.shape == (len(texts), 7) and np.isfinite(probs).all()
    saved = model.save(tmp_path / "student")
    loaded = load_model(saved, inference_dtype="float32")
    assert isinstance(loaded, DistilledClassifier) and loaded.student_layers == 1
    np.testing.assert_allclose(loaded.predict_proba(texts), probs, atol=1e-3)  # layers stored in fp16
    np.testing.assert_array_equal(loaded.thresholds_, model.thresholds_)
    assert loaded.predict(texts) == model.predict(texts)


def test_student_follows_the_teachers_scores_not_the_gold_labels(tiny_bert_dir, tiny_bert_model, monkeypatch):
    """The training target is the teacher's score: a teacher that says 0.9 everywhere pulls every score up."""
    from policyclf.models import distilled

    texts, labels = toy_data(3)
    seen = {}

    class Constant:
        thresholds_ = np.full(7, 0.5)

        def predict_proba(self, batch, headings=None):
            seen.setdefault("n", 0)
            seen["n"] += len(batch)
            return np.full((len(batch), 7), 0.9)

    monkeypatch.setattr(distilled.DistilledClassifier, "_get_teacher", lambda self, *a: Constant())
    model = _student(tiny_bert_dir, student_epochs=8, student_patience=8).fit(texts, labels)
    assert seen["n"] == len(texts)
    probs = model.predict_proba(texts)
    assert probs.mean() > 0.7  # gold labels are mostly negative: only the teacher's targets make this high


def test_teacher_is_trained_inside_fit_when_none_is_given(tiny_bert_dir):
    texts, labels = toy_data(3)
    model = _student(tiny_bert_dir).fit(texts, labels)
    assert model.validation_["teacher"]["source"] == "trained in this fit"
    assert "macro_f1" in model.validation_["teacher"]["validation"]


def test_a_teacher_that_is_not_bert_is_refused(tiny_bert_dir, tmp_path):
    from conftest import toy_data as td
    from policyclf.models.tfidf import TfidfClassifier

    texts, labels = td(3)
    tf = TfidfClassifier(threshold_folds=2).fit(texts, labels).save(tmp_path / "tfidf")
    with pytest.raises(ModelError, match="must be a bert model"):
        _student(tiny_bert_dir, teacher=str(tf)).fit(texts, labels)


def test_encoder_layers_keeps_the_bottom_layers_and_refuses_more_than_the_base_has(tiny_bert_dir):
    import torch

    from policyclf.models.bert import BertClassifier

    texts, labels = toy_data(2)
    kw = dict(base_model=str(tiny_bert_dir), max_length=16, window_stride=6, epochs=1, batch_size=8,
              progress=False, device="cpu")
    full = BertClassifier(**kw, trainable_layers=1).fit(texts, labels)
    one = BertClassifier(**kw, trainable_layers=1, encoder_layers=1).fit(texts, labels)
    assert len(one.encoder_.encoder.layer) == 1 and len(full.encoder_.encoder.layer) == 2
    # the kept layer is the base model's own bottom layer
    for a, b in zip(one.base_state_.values(), full.encoder_.encoder.layer[0].state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(ModelError, match="encoder_layers=3, but the base model has 2 layers"):
        BertClassifier(**kw, trainable_layers=1, encoder_layers=3).fit(texts, labels)


def test_teacher_scores_are_kept_so_a_killed_fit_resumes_without_the_teacher(tiny_bert_dir, tiny_bert_model,
                                                                             monkeypatch, tmp_path):
    from policyclf.models import distilled

    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("POLICYCLF_DISTILL_CACHE", "1")
    texts, labels = toy_data(3)
    first = _student(tiny_bert_dir, teacher=str(tiny_bert_model)).fit(texts, labels)
    assert len(list((tmp_path / "cache" / "distill").glob("*.npz"))) == 1

    def no_teacher(self, *a):
        raise AssertionError("the teacher was consulted again")

    monkeypatch.setattr(distilled.DistilledClassifier, "_get_teacher", no_teacher)
    again = _student(tiny_bert_dir, teacher=str(tiny_bert_model)).fit(texts, labels)
    np.testing.assert_allclose(again.predict_proba(texts), first.predict_proba(texts), atol=1e-6)
    assert again.validation_["teacher"] == first.validation_["teacher"]
    with pytest.raises(AssertionError, match="consulted again"):  # other training data: another key
        _student(tiny_bert_dir, teacher=str(tiny_bert_model)).fit(texts[:-1], labels[:-1])
    monkeypatch.setenv("POLICYCLF_DISTILL_CACHE", "0")
    with pytest.raises(AssertionError, match="consulted again"):
        _student(tiny_bert_dir, teacher=str(tiny_bert_model)).fit(texts, labels)


def test_a_teacher_trained_in_fit_is_kept_and_shared_by_student_recipes(tiny_bert_dir, monkeypatch, tmp_path):
    from policyclf.models import bert, distilled

    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("POLICYCLF_DISTILL_CACHE", "1")
    texts, labels = toy_data(3)
    first = _student(tiny_bert_dir).fit(texts, labels)
    kept = list((tmp_path / "cache" / "distill").glob("teacher-model-*"))
    assert len(kept) == 1 and (kept[0] / "meta.json").is_file()
    assert first.validation_["teacher"]["validation"]["macro_f1"] is not None

    def no_training(self, *a, **k):
        raise AssertionError("the teacher was trained again")

    monkeypatch.setattr(bert.BertClassifier, "fit", no_training)
    # another student recipe (more crops: other inputs, other scores) on the same passages: same teacher
    other = _student(tiny_bert_dir, crops=2).fit(texts, labels)
    assert other.validation_["teacher"] == first.validation_["teacher"]
    # its scores are the saved teacher's either way: rescoring the first recipe's inputs gives the same student
    for npz in (tmp_path / "cache" / "distill").glob("*.npz"):
        npz.unlink()
    again = _student(tiny_bert_dir).fit(texts, labels)
    np.testing.assert_allclose(again.predict_proba(texts), first.predict_proba(texts), atol=1e-5)
    with pytest.raises(AssertionError, match="trained again"):  # other training passages: another teacher
        _student(tiny_bert_dir).fit(texts[:-1], labels[:-1])


def test_spans_cut_from_validation_passages_are_not_trained_on(tiny_bert_dir):
    from policyclf.models.bert import BertClassifier

    texts, labels = toy_data(3)
    n = len(texts)
    kw = dict(base_model=str(tiny_bert_dir), max_length=16, window_stride=6, epochs=1, batch_size=8, progress=False,
              device="cpu", trainable_layers=1, validation_fraction=0.25, seed=5)
    targets = np.full((2 * n, 7), 0.3)
    spans = [t[: max(1, len(t) // 2)] for t in texts]
    model = BertClassifier(**kw)._fit_core(texts + spans, labels, holdout=True, targets=targets, n_gold=n,
                                           sources=list(range(n)))
    n_val = int(model.validation_["method"].split()[1].split("-")[0])
    # one span per passage: the spans of the n_val validation passages are left out, with the passages
    assert model.validation_["trained_inputs"] == 2 * (n - n_val)
    without = BertClassifier(**kw)._fit_core(texts + spans, labels, holdout=True, targets=targets, n_gold=n)
    assert without.validation_["trained_inputs"] == 2 * n - n_val
    with pytest.raises(ModelError, match="sources for"):
        BertClassifier(**kw)._fit_core(texts + spans, labels, holdout=True, targets=targets, n_gold=n, sources=[0])


def test_a_bert_model_trained_by_the_protocol_is_the_students_teacher(tiny_bert_dir, monkeypatch, tmp_path):
    """report trains the teacher backend and then the student on the same split: the student reads
    the kept bert model instead of training an identical teacher again."""
    from policyclf.models import bert, distilled
    from policyclf.models.bert import BertClassifier

    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("POLICYCLF_DISTILL_CACHE", "1")
    texts, labels = toy_data(3)
    student = _student(tiny_bert_dir)
    teacher = BertClassifier(**student.teacher_params(), device="cpu", progress=False).fit(texts, labels)
    kept = distilled.share_as_teacher(teacher, texts, labels)
    assert kept is not None and (kept / "meta.json").is_file()
    assert kept == student._teacher_cache(texts, labels, None, [""] * len(texts))

    def no_training(self, *a, **k):
        raise AssertionError("the teacher was trained again")

    monkeypatch.setattr(bert.BertClassifier, "fit", no_training)
    got = student.fit(texts, labels)
    assert got.validation_["teacher"]["validation"]["macro_f1"] == teacher.validation_["macro_f1"]
    # a teacher with other settings is not shared with this student
    assert distilled.teacher_cache_path({**student.teacher_params(), "seed": 99}, texts, labels, None, None) != kept
    assert distilled.share_as_teacher(student, texts, labels) is None  # only a bert model is a teacher
    monkeypatch.setenv("POLICYCLF_DISTILL_CACHE", "0")
    assert distilled.share_as_teacher(teacher, texts, labels) is None


def _tiny_report_config(tmp_path, fake_repo, fake_corpus, tiny_bert_dir, report: str):
    """A report config over the fake corpus with the tiny base model; ``report``: extra [report] lines."""
    ann = fake_repo / "data" / "annotated"
    cfg_path = tmp_path / "r.toml"
    cfg_path.write_text(
        f'[data]\ncorpus = "{fake_corpus}"\nannotations = ["{ann / "six_regions.jsonl"}"]\n'
        f'[model]\nbackend = "bert"\nbase_model = "{tiny_bert_dir}"\nmax_length = 16\nwindow_stride = 6\n'
        'trainable_layers = 1\ninference_dtype = "float32"\n'
        '[training]\nepochs = 1\nbatch_size = 8\nvalidation_fraction = 0.25\ndevice = "cpu"\n'
        '[distill]\nstudent_layers = 1\nepochs = 1\n'
        f'[report]\n{report}loro_regions = ["beijing"]\nbootstrap = 100\n'
        f'test_annotations = "{ann / "other_provinces_test.jsonl"}"\n', encoding="utf-8")
    return cfg_path


def _count_teacher_fits(monkeypatch) -> list:
    """A list that gets one entry per BertClassifier.fit of a teacher (or the bert backend), not of a student."""
    from policyclf.models import bert

    teachers = []
    real_fit = bert.BertClassifier.fit

    def counting_fit(self, *a, **k):
        if not self.encoder_layers:  # the student has encoder_layers set; a teacher (or the bert backend) not
            teachers.append(1)
        return real_fit(self, *a, **k)

    monkeypatch.setattr(bert.BertClassifier, "fit", counting_fit)
    return teachers


def test_the_report_trains_each_splits_teacher_once_for_bert_and_its_student(tiny_bert_dir, fake_repo, fake_corpus,
                                                                             monkeypatch, tmp_path):
    """Through run_protocol: the bert backend's fold model is the distilled backend's teacher on that fold."""
    from policyclf.config import load_config
    from policyclf.protocol import run_protocol

    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("POLICYCLF_DISTILL_CACHE", "1")
    cfg_path = _tiny_report_config(tmp_path, fake_repo, fake_corpus, tiny_bert_dir,
                                   'backends = ["bert", "distilled"]\nunseen = false\n')
    teachers = _count_teacher_fits(monkeypatch)
    out = run_protocol(load_config(cfg_path), tmp_path / "rep", log=lambda m: None)
    assert (out / "predictions" / "bert" / "loro-beijing.jsonl").is_file()
    assert (out / "predictions" / "distilled" / "loro-beijing.jsonl").is_file()
    assert len(teachers) == 1  # trained by the bert backend, read back by the student
    assert len(list((tmp_path / "cache" / "distill").glob("teacher-model-*"))) == 1


def test_a_saved_bert_model_of_the_same_split_is_adopted_as_the_students_teacher(tiny_bert_dir, fake_repo,
                                                                                fake_corpus, monkeypatch, tmp_path):
    """report --reuse-model MODEL: a saved bert model trained on exactly the unseen split's data (the
    shipped teacher) becomes that split's teacher; a model trained on other passages is not adopted."""
    from policyclf.config import load_config
    from policyclf.protocol import adopt_teacher, protocol_splits, run_protocol, unseen_examples
    from policyclf.training import training_examples

    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("POLICYCLF_DISTILL_CACHE", "1")
    cfg_path = _tiny_report_config(tmp_path, fake_repo, fake_corpus, tiny_bert_dir, 'backends = ["bert"]\n')
    cfg = load_config(cfg_path)
    run_protocol(cfg, tmp_path / "rep", save_models=tmp_path / "saved", log=lambda m: None)
    saved = tmp_path / "saved" / "bert"
    (tmp_path / "cache").rename(tmp_path / "cache-of-the-bert-run")  # a new session: nothing kept
    splits = {n: tr for n, tr, _ in protocol_splits(cfg, training_examples(cfg), unseen_examples(cfg))}
    assert adopt_teacher(saved, cfg, splits["loro-beijing"]) is None  # trained on other passages
    teachers = _count_teacher_fits(monkeypatch)
    cfg.report.backends = ["distilled"]
    logs = []
    out = run_protocol(cfg, tmp_path / "rep", reuse_models=[saved], log=logs.append)
    assert (out / "predictions" / "distilled" / "unseen.jsonl").is_file()
    assert (out / "predictions" / "distilled" / "loro-beijing.jsonl").is_file()
    assert len(teachers) == 1  # the beijing fold trained its own teacher; the unseen split adopted the saved one
    assert any("is this split's teacher" in m for m in logs)
    assert len(list((tmp_path / "cache" / "distill").glob("teacher-model-*"))) == 2
