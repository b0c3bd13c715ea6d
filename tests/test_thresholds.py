import numpy as np

from policyclf.thresholds import f1_at, tune_thresholds


def test_threshold_separating_classes_is_found():
    y = np.array([[1, 0], [1, 0], [0, 0], [0, 1]])
    s = np.array([[0.9, 0.1], [0.35, 0.2], [0.3, 0.1], [0.2, 0.6]])
    t = tune_thresholds(y, s, grid=[0.1, 0.32, 0.5, 0.8])
    assert t[0] == 0.32  # only a threshold between 0.30 and 0.35 catches both positives without the negative
    assert f1_at(y[:, 0], s[:, 0], t[0]) == 1.0
    assert 0.2 < t[1] <= 0.6


def test_column_without_positives_keeps_default():
    y = np.zeros((3, 1), dtype=int)
    assert tune_thresholds(y, np.array([[0.9], [0.1], [0.4]]))[0] == 0.5
