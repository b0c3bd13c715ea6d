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


def test_weights_are_a_deflated_npz_without_objects(tmp_path):
    """The weights file is a deflated .npz (the shipped model must fit the repository's 25 MB) of numeric
    arrays only, so it loads with allow_pickle=False."""
    import zipfile

    texts, labels = toy_data()
    model = TfidfClassifier(threshold_folds=3).fit(texts, labels)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "tfidf.npz"
    with zipfile.ZipFile(path) as z:
        assert {i.compress_type for i in z.infolist()} == {zipfile.ZIP_DEFLATED}
    with np.load(path, allow_pickle=False) as z:
        assert {z[k].dtype.kind for k in z.files} <= {"f", "u"}
    assert not (tmp_path / "m" / "tfidf.skops").exists()


def _legacy_state(model):
    """What the skops format (before 2026-12-07) held."""
    state = {"coef": model.coef_, "intercept": model.intercept_}
    for name in model._blocks():
        vec = getattr(model, f"{name}_vectorizer_")
        state[f"{name}_terms"] = "\x00".join(sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__))
        state[f"{name}_idf"] = vec.idf_
    return state


@pytest.mark.parametrize("compression", ["stored", "deflated"])
def test_legacy_skops_files_still_load_to_the_same_scores(tmp_path, compression):
    """Models saved as tfidf.skops (stored before 2026-12-06, deflated until 2026-12-07) load as before,
    and re-saving one writes the .npz in its place."""
    import zipfile

    import skops.io as sio

    texts, labels = toy_data()
    model = TfidfClassifier(threshold_folds=3).fit(texts, labels)
    model.save(tmp_path / "m")
    (tmp_path / "m" / "tfidf.npz").unlink()
    kw = {"compression": zipfile.ZIP_DEFLATED} if compression == "deflated" else {}
    sio.dump(_legacy_state(model), tmp_path / "m" / "tfidf.skops", **kw)
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict_proba(texts), model.predict_proba(texts))
    loaded.save(tmp_path / "m")
    assert (tmp_path / "m" / "tfidf.npz").is_file() and not (tmp_path / "m" / "tfidf.skops").exists()
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict_proba(texts), model.predict_proba(texts))


def test_loading_imports_neither_skops_nor_torch(tmp_path):
    """The default model's start-up: skops' import walks every scikit-learn estimator and pulls in torch."""
    import subprocess
    import sys

    texts, labels = toy_data()
    TfidfClassifier(threshold_folds=3).fit(texts, labels).save(tmp_path / "m")
    code = ("import sys; from policyclf.models.base import load_model; "
            f"m = load_model({str(tmp_path / 'm')!r}); m.predict_proba(['设立科技专项资金']); "
            "bad = [k for k in ('skops', 'torch', 'transformers') if k in sys.modules]; assert not bad, bad")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]


class Smuggled:
    """A type that a saved baseline never contains."""


def test_untrusted_types_refused_in_legacy_files(tmp_path):
    import skops.io as sio

    texts, labels = toy_data()
    model = TfidfClassifier(threshold_folds=3).fit(texts, labels)
    model.save(tmp_path / "m")
    (tmp_path / "m" / "tfidf.npz").unlink()
    sio.dump({**_legacy_state(model), "extra": Smuggled()}, tmp_path / "m" / "tfidf.skops")
    with pytest.raises(ModelError, match="untrusted types"):
        load_model(tmp_path / "m")


def test_object_arrays_refused_and_missing_arrays_named(tmp_path):
    """An .npz holding a Python object (which only pickle could restore) is refused, not unpickled; one
    that lacks an array is called damaged, naming it."""
    from policyclf.errors import ModelFileError

    texts, labels = toy_data()
    model = TfidfClassifier(threshold_folds=3).fit(texts, labels)
    model.save(tmp_path / "m")
    path = tmp_path / "m" / "tfidf.npz"
    with np.load(path) as z:
        state = {k: z[k] for k in z.files}
    np.savez_compressed(path, **{**state, "coef": np.array([Smuggled()], dtype=object)})
    with pytest.raises(ModelError, match="pickle"):
        load_model(tmp_path / "m")
    np.savez_compressed(path, **{k: v for k, v in state.items() if k != "intercept"})
    with pytest.raises(ModelFileError, match=r"tfidf.npz is damaged or incomplete \(arrays \['intercept'\] missing"):
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
