"""Multilabel metrics, bootstrap intervals, and inter-coder agreement.

Conventions (stated because they change numbers):
- a category's F1 is undefined (NaN) when it has no gold and no predicted positives in the set;
  macro-F1 averages the defined ones;
- sample F1 of a passage with empty gold and empty prediction is 1 (correctly left unlabelled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from policyclf.labels import CATEGORIES, labels_to_matrix


def _prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else (np.nan if tp + fp + fn == 0 else 0.0)
    r = tp / (tp + fn) if tp + fn else (np.nan if tp + fp + fn == 0 else 0.0)
    f = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else np.nan
    return p, r, f


def per_category(y_true: np.ndarray, y_pred: np.ndarray, categories: Sequence[str] = CATEGORIES) -> dict[str, dict[str, float]]:
    """Precision, recall, F1 and support for each category column."""
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    out = {}
    for j, cat in enumerate(categories):
        tp = float(np.sum(y_true[:, j] & y_pred[:, j]))
        fp = float(np.sum(~y_true[:, j] & y_pred[:, j]))
        fn = float(np.sum(y_true[:, j] & ~y_pred[:, j]))
        p, r, f = _prf(tp, fp, fn)
        out[cat] = {"precision": p, "recall": r, "f1": f, "support": int(y_true[:, j].sum())}
    return out


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of the defined per-category F1 scores."""
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    tp = np.sum(y_true & y_pred, axis=0)
    wrong = np.sum(y_true ^ y_pred, axis=0)
    denom = 2 * tp + wrong
    defined = denom > 0
    if not defined.any():
        return float("nan")
    return float(np.mean(2 * tp[defined] / denom[defined]))


def micro_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """F1 over all (passage, category) decisions pooled."""
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    tp = np.sum(y_true & y_pred)
    denom = 2 * tp + np.sum(y_true ^ y_pred)
    return float(2 * tp / denom) if denom else float("nan")


def sample_f1(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean over passages of the F1 between gold and predicted label sets (empty = empty → 1)."""
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    tp = np.sum(y_true & y_pred, axis=1)
    denom = np.sum(y_true, axis=1) + np.sum(y_pred, axis=1)
    per = np.where(denom == 0, 1.0, 2 * tp / np.maximum(denom, 1))
    return float(per.mean()) if len(per) else float("nan")


def multilabel_report(y_true: np.ndarray, y_pred: np.ndarray, categories: Sequence[str] = CATEGORIES) -> dict[str, Any]:
    """All the set-level numbers the reports show, as plain floats."""
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    gold_empty = ~y_true.any(axis=1)
    return {
        "n": int(len(y_true)),
        "micro_f1": micro_f1(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred),
        "sample_f1": sample_f1(y_true, y_pred),
        "subset_accuracy": float(np.mean(np.all(y_true == y_pred, axis=1))) if len(y_true) else float("nan"),
        "hamming_loss": float(np.mean(y_true != y_pred)) if len(y_true) else float("nan"),
        # of the passages that carry no category, the share the model also left unlabelled
        "empty_correct": float(np.mean(~y_pred[gold_empty].any(axis=1))) if gold_empty.any() else float("nan"),
        "n_empty": int(gold_empty.sum()),
        "per_category": per_category(y_true, y_pred, categories),
    }


MIN_SUBSET_SUPPORT = 20  # a subset's macro average counts only categories with this many positives there


def subset_report(y_true: np.ndarray, y_pred: np.ndarray, categories: Sequence[str] = CATEGORIES,
                  min_support: int = MIN_SUBSET_SUPPORT) -> dict[str, Any]:
    """:func:`multilabel_report` of a subset (a genre, a region) plus the macro-F1 over the categories
    with at least ``min_support`` positives in it, naming those left out: a category with a handful of
    positives in a subset would otherwise swing its 7-way macro average."""
    rep = multilabel_report(y_true, y_pred, categories)
    kept = [c for c in categories if rep["per_category"][c]["support"] >= min_support]
    idx = [categories.index(c) for c in kept]
    y_true, y_pred = np.asarray(y_true, bool), np.asarray(y_pred, bool)
    rep["min_support"] = min_support
    rep["supported_categories"] = kept
    rep["left_out_categories"] = [c for c in categories if c not in kept]
    rep["macro_f1_supported"] = macro_f1(y_true[:, idx], y_pred[:, idx]) if idx else float("nan")
    return rep


# ------------------------------------------------------------------ bootstrap

def bootstrap_indices(n: int, n_boot: int, seed: int = 0, groups: Sequence[Any] | None = None) -> list[np.ndarray]:
    """Resamples of row indices: passages with replacement, or whole groups (documents) if given."""
    rng = np.random.default_rng(seed)
    if groups is None:
        return [rng.integers(0, n, n) for _ in range(n_boot)]
    groups = np.asarray(groups)
    uniq = np.unique(groups)
    members = [np.flatnonzero(groups == g) for g in uniq]
    out = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(uniq), len(uniq))
        out.append(np.concatenate([members[i] for i in pick]))
    return out


def bootstrap_ci(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y_true: np.ndarray, y_pred: np.ndarray, *, n_boot: int = 1000, alpha: float = 0.05,
    seed: int = 0, groups: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Point estimate and percentile bootstrap interval of ``metric(y_true, y_pred)``."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    stats = np.array([metric(y_true[i], y_pred[i]) for i in bootstrap_indices(len(y_true), n_boot, seed, groups)])
    stats = stats[~np.isnan(stats)]
    lo, hi = np.percentile(stats, [100 * alpha / 2, 100 * (1 - alpha / 2)]) if len(stats) else (np.nan, np.nan)
    return {"value": float(metric(y_true, y_pred)), "lo": float(lo), "hi": float(hi), "n_boot": int(len(stats))}


def paired_bootstrap(
    metric: Callable[[np.ndarray, np.ndarray], float],
    y_true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *, n_boot: int = 1000,
    alpha: float = 0.05, seed: int = 0, groups: Sequence[Any] | None = None,
) -> dict[str, float]:
    """Difference ``metric(a) − metric(b)`` on the same resamples: interval and two-sided p-value.

    The p-value is the share of resamples whose difference falls on the other side of zero,
    doubled (with add-one smoothing so it is never exactly 0).
    """
    y_true, pred_a, pred_b = np.asarray(y_true), np.asarray(pred_a), np.asarray(pred_b)
    diffs = []
    for idx in bootstrap_indices(len(y_true), n_boot, seed, groups):
        diffs.append(metric(y_true[idx], pred_a[idx]) - metric(y_true[idx], pred_b[idx]))
    d = np.array(diffs)
    d = d[~np.isnan(d)]
    lo, hi = np.percentile(d, [100 * alpha / 2, 100 * (1 - alpha / 2)])
    p = 2 * min((np.sum(d <= 0) + 1) / (len(d) + 1), (np.sum(d >= 0) + 1) / (len(d) + 1))
    return {"diff": float(metric(y_true, pred_a) - metric(y_true, pred_b)), "lo": float(lo),
            "hi": float(hi), "p_value": float(min(p, 1.0)), "n_boot": int(len(d))}


# ------------------------------------------------------------------ agreement

def cohen_kappa(a: Sequence[Any], b: Sequence[Any]) -> float:
    """Cohen's kappa of two coders' nominal decisions on the same units."""
    a, b = np.asarray(a), np.asarray(b)
    cats = np.unique(np.concatenate([a, b]))
    po = float(np.mean(a == b))
    pe = float(sum(np.mean(a == c) * np.mean(b == c) for c in cats))
    if pe == 1.0:
        return 1.0 if po == 1.0 else float("nan")
    return (po - pe) / (1 - pe)


def masi_distance(a: frozenset, b: frozenset) -> float:
    """MASI distance between two label sets (Passonneau 2006); two empty sets are identical."""
    if a == b:
        return 0.0
    union = a | b
    jaccard = len(a & b) / len(union)
    if a <= b or b <= a:
        m = 2 / 3
    elif a & b:
        m = 1 / 3
    else:
        m = 0.0
    return 1.0 - jaccard * m


def krippendorff_alpha_two_coders(
    a: Sequence[Any], b: Sequence[Any], distance: Callable[[Any, Any], float] | None = None
) -> float:
    """Krippendorff's alpha for two coders who both coded every unit.

    ``distance`` defaults to the nominal metric (0 if equal, else 1); pass ``masi_distance``
    for label sets.
    """
    dist = distance or (lambda x, y: 0.0 if x == y else 1.0)
    a, b = list(a), list(b)
    n = len(a)
    if n == 0:
        return float("nan")
    observed = sum(dist(x, y) for x, y in zip(a, b)) / n
    values = a + b
    # expected disagreement over all pairs of pairable values; count distinct values for speed
    from collections import Counter

    counts = Counter(values)
    keys = list(counts)
    total = len(values)
    expected = sum(counts[x] * counts[y] * dist(x, y) for x in keys for y in keys if x != y)
    expected /= total * (total - 1)
    if expected == 0:
        return 1.0 if observed == 0 else float("nan")
    return 1.0 - observed / expected


def agreement_table(
    coder_a: Sequence[Sequence[str]], coder_b: Sequence[Sequence[str]],
    final: Sequence[Sequence[str]], categories: Sequence[str] = CATEGORIES,
) -> dict[str, Any]:
    """Agreement of two coders on the same passages, and each coder against the final labels.

    Returns per category: Cohen's kappa and Krippendorff's alpha (nominal, presence/absence),
    positives per coder, and each coder's F1 against the adjudicated labels (the human
    ceiling); overall: exact label-set agreement, MASI-distance alpha over label sets, pooled
    kappa, and each coder's micro/macro F1 against the final labels.
    """

    ya, yb, yf = (labels_to_matrix(x, categories) for x in (coder_a, coder_b, final))
    per: dict[str, Any] = {}
    for j, cat in enumerate(categories):
        fa = per_category(yf[:, [j]], ya[:, [j]], [cat])[cat]["f1"]
        fb = per_category(yf[:, [j]], yb[:, [j]], [cat])[cat]["f1"]
        per[cat] = {
            "cohen_kappa": cohen_kappa(ya[:, j], yb[:, j]),
            "krippendorff_alpha": krippendorff_alpha_two_coders(list(ya[:, j]), list(yb[:, j])),
            "positives_a": int(ya[:, j].sum()), "positives_b": int(yb[:, j].sum()),
            "positives_final": int(yf[:, j].sum()),
            "f1_a_vs_final": fa, "f1_b_vs_final": fb,
            "human_ceiling_f1": float(np.nanmean([fa, fb])) if not (np.isnan(fa) and np.isnan(fb))
            else float("nan"),
        }
    sets_a = [frozenset(x) for x in coder_a]
    sets_b = [frozenset(x) for x in coder_b]
    overall = {
        "passages": len(sets_a),
        "exact_agreement": float(np.mean([a == b for a, b in zip(sets_a, sets_b)])) if sets_a else float("nan"),
        "masi_alpha": krippendorff_alpha_two_coders(sets_a, sets_b, masi_distance),
        "pooled_cohen_kappa": cohen_kappa(ya.ravel(), yb.ravel()),
        "mean_category_kappa": float(np.nanmean([v["cohen_kappa"] for v in per.values()])),
        "mean_category_alpha": float(np.nanmean([v["krippendorff_alpha"] for v in per.values()])),
        "coder_a_vs_final": {"micro_f1": micro_f1(yf, ya), "macro_f1": macro_f1(yf, ya)},
        "coder_b_vs_final": {"micro_f1": micro_f1(yf, yb), "macro_f1": macro_f1(yf, yb)},
        "human_ceiling_macro_f1": float(np.mean([macro_f1(yf, ya), macro_f1(yf, yb)])),
    }
    return {"overall": overall, "per_category": per}
