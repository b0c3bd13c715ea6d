import math

import numpy as np
import pytest

from policyclf.metrics import (bootstrap_ci, cohen_kappa, krippendorff_alpha_two_coders, macro_f1, masi_distance,
                               micro_f1, multilabel_report, paired_bootstrap, sample_f1)

# 4 passages x 3 categories, worked by hand below
GOLD = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0], [0, 0, 0]])
PRED = np.array([[1, 0, 0], [0, 1, 1], [0, 0, 0], [1, 0, 0]])


def test_hand_computed_case():
    rep = multilabel_report(GOLD, PRED, ["a", "b", "c"])
    # a: tp1 fp1 fn1 -> P .5 R .5 F .5; b: tp1 -> 1.0; c: fp1 -> P 0, F 0 (support 0)
    assert rep["per_category"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert rep["per_category"]["b"]["f1"] == 1.0
    assert rep["per_category"]["c"]["f1"] == 0.0 and rep["per_category"]["c"]["support"] == 0
    assert rep["macro_f1"] == pytest.approx(0.5)
    # micro: tp 2, fp 2, fn 1 -> 4/7
    assert rep["micro_f1"] == pytest.approx(4 / 7)
    # samples: 1, 2*1/(2+2)=.5, empty/empty=1, 0 -> 2.5/4
    assert rep["sample_f1"] == pytest.approx(0.625)
    assert rep["subset_accuracy"] == 0.5
    assert rep["hamming_loss"] == pytest.approx(3 / 12)
    # two gold-empty passages, one predicted empty
    assert rep["empty_correct"] == 0.5 and rep["n_empty"] == 2


def test_empty_label_sets_everywhere():
    z = np.zeros((3, 2), dtype=int)
    assert sample_f1(z, z) == 1.0
    assert math.isnan(macro_f1(z, z)) and math.isnan(micro_f1(z, z))
    assert multilabel_report(z, z, ["a", "b"])["empty_correct"] == 1.0


def test_category_absent_from_gold_and_prediction_is_left_out_of_macro():
    gold = np.array([[1, 0], [0, 0]])
    assert macro_f1(gold, gold) == 1.0


def test_bootstrap_interval_of_a_mean_matches_theory():
    rng = np.random.default_rng(1)
    y = (rng.random(400) < 0.5).astype(int)
    ci = bootstrap_ci(lambda t, p: float(np.mean(t == p)), y, np.ones_like(y), n_boot=2000, seed=3)
    p = np.mean(y)
    se = math.sqrt(p * (1 - p) / len(y))
    assert ci["lo"] == pytest.approx(p - 1.96 * se, abs=0.01)
    assert ci["hi"] == pytest.approx(p + 1.96 * se, abs=0.01)


def test_bootstrap_of_a_constant_is_degenerate_and_groups_resample_whole_documents():
    y = np.ones(10, dtype=int)
    ci = bootstrap_ci(lambda t, p: float(np.mean(t == p)), y, y, n_boot=100, groups=[i // 2 for i in range(10)])
    assert ci["value"] == ci["lo"] == ci["hi"] == 1.0


def test_paired_bootstrap_detects_a_real_difference_and_not_a_null_one():
    rng = np.random.default_rng(0)
    gold = (rng.random((300, 3)) < 0.3).astype(int)
    good = gold.copy()
    bad = gold.copy()
    flip = rng.random(gold.shape) < 0.25
    bad[flip] = 1 - bad[flip]
    res = paired_bootstrap(macro_f1, gold, good, bad, n_boot=500)
    assert res["diff"] > 0 and res["lo"] > 0 and res["p_value"] < 0.01
    same = paired_bootstrap(macro_f1, gold, bad, bad, n_boot=200)
    assert same["diff"] == 0 and same["p_value"] == 1.0


def test_agreement_statistics_known_values():
    a = [1, 1, 0, 0, 1, 0, 1, 0]
    b = [1, 1, 0, 0, 0, 0, 1, 1]
    # po = 6/8, pe = .5*.5 + .5*.5 = .5 -> kappa .5
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    # Krippendorff nominal, 2 coders, 8 units: Do = 2/8; values 8 ones and 8 zeros:
    # De = 2*8*8/(16*15) = 128/240 -> alpha = 1 - .25/.5333 = 0.53125
    assert krippendorff_alpha_two_coders(a, b) == pytest.approx(1 - 0.25 / (128 / 240))
    assert krippendorff_alpha_two_coders(a, a) == 1.0


def test_masi_distance():
    f = frozenset
    assert masi_distance(f(), f()) == 0.0
    assert masi_distance(f("a"), f("ab")) == pytest.approx(1 - 0.5 * 2 / 3)
    assert masi_distance(f("ab"), f("bc")) == pytest.approx(1 - (1 / 3) * (1 / 3))
    assert masi_distance(f("a"), f("b")) == 1.0


def test_subset_macro_counts_only_categories_with_enough_positives():
    """A genre with 1 positive of a category: the 7-way macro swings on it, the supported one does not."""
    from policyclf.labels import CATEGORIES
    from policyclf.metrics import subset_report

    rng = np.random.default_rng(0)
    y = np.zeros((200, len(CATEGORIES)), bool)
    y[:, 0] = rng.random(200) < 0.3  # 60-ish positives
    y[:, 1] = rng.random(200) < 0.2
    y[0, 2] = True  # a single positive, missed below
    pred = y.copy()
    pred[0, 2] = False
    rep = subset_report(y, pred)
    assert rep["supported_categories"] == list(CATEGORIES[:2])
    assert rep["left_out_categories"] == list(CATEGORIES[2:])
    assert rep["macro_f1_supported"] == 1.0
    assert rep["macro_f1"] < 1.0  # the one missed positive drags the 7-way average
    assert rep["per_category"][CATEGORIES[2]]["support"] == 1
