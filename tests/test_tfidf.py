import numpy as np
import pytest

from conftest import toy_data
from policyclf.errors import ModelError
from policyclf.labels import CATEGORIES
from policyclf.models.base import load_model
from policyclf.models.tfidf import TfidfClassifier


def test_fit_predict_shapes_and_labels():
    texts, labels = toy_data()
    model = TfidfClassifier(threshold_folds=3).fit(texts, labels)
    proba = model.predict_proba(texts)
    assert proba.shape == (len(texts), 7) and ((proba >= 0) & (proba <= 1)).all()
    assert model.thresholds_.shape == (7,)
    pred = model.predict(texts[:8])
    assert pred[0] == ["investment_channels"] and pred[2] == ["talent_teams"]
    assert pred[6] == []  # the effective-date clause keeps no label
    assert set(model.validation_) >= {"macro_f1", "micro_f1"}


def test_save_load_round_trip_identical_scores(tmp_path):
    texts, labels = toy_data()
    model = TfidfClassifier(threshold_folds=3).fit(texts, labels, groups=[str(i % 4) for i in range(len(texts))])
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, TfidfClassifier)
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    np.testing.assert_array_equal(loaded.thresholds_, model.thresholds_)
    assert not list((tmp_path / "m").glob("*.pkl")) and not list((tmp_path / "m").glob("*.joblib"))


def test_weights_are_deflated_and_uncompressed_files_still_load(tmp_path):
    """The weights file is stored deflated (the shipped model must fit the repository's 25 MB); a file
    written before that (stored uncompressed) loads to the same scores."""
    import zipfile

    import skops.io as sio

    texts, labels = toy_data()
    model = TfidfClassifier(threshold_folds=3).fit(texts, labels)
    model.save(tmp_path / "m")
    with zipfile.ZipFile(tmp_path / "m" / "tfidf.skops") as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    path = tmp_path / "m" / "tfidf.skops"
    state = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    sio.dump(state, path)  # the old way: ZIP_STORED
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_STORED}
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(texts), model.predict_proba(texts))


class Smuggled:
    """A type that a saved baseline never contains."""


def test_untrusted_types_refused(tmp_path):
    import skops.io as sio

    texts, labels = toy_data()
    model = TfidfClassifier(threshold_folds=3).fit(texts, labels)
    model.save(tmp_path / "m")
    state = {"coef": model.coef_, "intercept": model.intercept_, "extra": Smuggled()}
    sio.dump(state, tmp_path / "m" / "tfidf.skops")
    with pytest.raises(ModelError, match="untrusted types"):
        load_model(tmp_path / "m")


def test_category_without_positives_gets_low_scores():
    texts, labels = toy_data()
    model = TfidfClassifier(threshold_folds=3).fit(texts, labels)
    j = CATEGORIES.index("social_organizations")
    assert model.predict_proba(texts)[:, j].max() < 0.01


def test_heading_block_is_used_saved_and_loaded(tmp_path):
    texts, labels = toy_data(4)
    heads = ["第二章 人才" if "人才" in t else "第三章 资金" for t in texts]
    model = TfidfClassifier(threshold_folds=2, use_heading=True).fit(texts, labels, headings=heads)
    a = model.predict_proba(texts, heads)
    assert not np.allclose(a, model.predict_proba(texts, ["附则"] * len(texts)))
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.use_heading and np.allclose(loaded.predict_proba(texts, heads), a)
    assert np.allclose(loaded.predict_proba(texts), model.predict_proba(texts))  # no headings: the "none" marker
