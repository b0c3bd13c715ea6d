"""TF-IDF baseline: character 1–3-grams + jieba words, one-vs-rest logistic regression.

Saved as a deflated ``.npz`` of plain numeric arrays, read with ``allow_pickle=False``: no pickle anywhere,
and loading imports neither skops nor torch (skops' import walks every scikit-learn estimator and pulls in
torch: most of the default model's start-up). Models saved before 2026-12-07 (``tfidf.skops``) still load,
through skops against an explicit list of trusted types.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.errors import ModelError
from policyclf.labels import labels_to_matrix
from policyclf.models.base import BaseClassifier
from policyclf.thresholds import tune_thresholds

WEIGHTS_FILE = "tfidf.npz"
LEGACY_WEIGHTS_FILE = "tfidf.skops"  # the format before 2026-12-07; loads with skops
SEP = "\x00"
NO_HEADING = "〇"  # what the heading block sees for a passage without a heading
# Everything a legacy (skops) baseline may contain; load refuses any other type.
TRUSTED_TYPES = [  # a saved baseline is a dict of str, float arrays and nothing else
    "builtins.dict",
    "builtins.str",
    "numpy.ndarray",
    "numpy.float64",
    "numpy.dtype",
]


@functools.lru_cache(maxsize=100_000)
def jieba_words(text: str) -> str:
    """Space-joined jieba tokens (so the saved vectorizer needs no custom tokenizer callable).

    Cached: inner cross-validation and evaluation protocols cut the same passages many times.
    """
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return " ".join(t for t in jieba.lcut(text) if t.strip())


class TfidfClassifier(BaseClassifier):
    """Character n-gram + word TF-IDF features, class-weighted logistic regression per category.

    Args:
        char_ngram_max: longest character n-gram (from 1).
        use_words: add jieba word unigrams and bigrams.
        C: inverse regularisation strength of the logistic regressions.
        max_features: vocabulary cap per vectorizer.
        threshold_folds: inner cross-validation folds for tuning per-category thresholds.
        seed: random seed for the folds.
    """

    backend = "tfidf"
    CONFIG_KEYS = {"char_ngram_max": ("baseline", "char_ngram_max"), "use_words": ("baseline", "use_words"),
                   "C": ("baseline", "C"), "max_features": ("baseline", "max_features"),
                   "threshold_folds": ("baseline", "threshold_folds"), "seed": ("training", "seed"),
                   "use_heading": ("baseline", "use_heading")}

    def __init__(self, char_ngram_max: int = 3, use_words: bool = True, C: float = 4.0,
                 max_features: int = 200_000, threshold_folds: int = 5, seed: int = 13,
                 use_heading: bool = False) -> None:
        self.use_heading = use_heading
        self.char_ngram_max = char_ngram_max
        self.use_words = use_words
        self.C = C
        self.max_features = max_features
        self.threshold_folds = threshold_folds
        self.seed = seed

    # ------------------------------------------------------------ fitting
    def _blocks(self) -> tuple[str, ...]:
        return ("char", *(("word",) if self.use_words else ()), *(("heading",) if self.use_heading else ()))

    def _features(self, texts: Sequence[str], fit: bool, headings: Sequence[str] | None = None):
        from scipy.sparse import hstack

        heads = [h or NO_HEADING for h in headings] if headings is not None else [NO_HEADING] * len(texts)
        inputs = {"char": list(texts), "word": [jieba_words(t) for t in texts] if self.use_words else None,
                  "heading": heads}
        if fit:
            for name in self._blocks():
                setattr(self, f"{name}_vectorizer_", self._new_vectorizer(name).fit(inputs[name]))
        return hstack([getattr(self, f"{name}_vectorizer_").transform(inputs[name]) for name in self._blocks()]).tocsr()

    def _new_vectorizer(self, kind: str, vocabulary: dict[str, int] | None = None):
        from sklearn.feature_extraction.text import TfidfVectorizer

        if kind == "char":
            return TfidfVectorizer(analyzer="char", ngram_range=(1, self.char_ngram_max), sublinear_tf=True,
                                   min_df=2, max_features=self.max_features, vocabulary=vocabulary)
        if kind == "heading":  # the chapter/section heading above the passage: context, its own block
            return TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                                   max_features=20_000, vocabulary=vocabulary)
        return TfidfVectorizer(analyzer="word", token_pattern=r"(?u)\S+", ngram_range=(1, 2), sublinear_tf=True,
                               min_df=2, max_features=self.max_features, vocabulary=vocabulary)

    def _fit_heads(self, x, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        from sklearn.linear_model import LogisticRegression

        coef = np.zeros((y.shape[1], x.shape[1]))
        intercept = np.zeros(y.shape[1])
        for j in range(y.shape[1]):
            pos = y[:, j].mean()
            if pos in (0.0, 1.0):  # one class only: a constant score
                intercept[j] = 20.0 if pos == 1.0 else -20.0
                continue
            clf = LogisticRegression(C=self.C, class_weight="balanced", solver="liblinear",
                                     max_iter=2000, random_state=self.seed)
            clf.fit(x, y[:, j])
            coef[j], intercept[j] = clf.coef_[0], clf.intercept_[0]
        return coef, intercept

    def fit(self, texts: Sequence[str], labels: Sequence[Sequence[str]],
            groups: Sequence[str] | None = None, headings: Sequence[str] | None = None) -> "TfidfClassifier":
        """Fit on passages and their category lists; thresholds from inner cross-validation.

        Args:
            groups: document ids; inner folds keep each document in one fold.
        """
        texts = list(texts)
        if not texts:
            raise ModelError("no training passages")
        y = labels_to_matrix(labels, self.labels)
        heads = list(headings) if headings is not None else [""] * len(texts)
        oof = self.out_of_fold_scores(texts, y, groups, heads)
        self.thresholds_ = tune_thresholds(y, oof)
        from policyclf.metrics import macro_f1, micro_f1

        pred = oof >= self.thresholds_
        self.validation_ = {"method": f"{self.threshold_folds}-fold inner CV, out-of-fold scores "
                                      "(thresholds tuned on the same scores: optimistic)",
                            "macro_f1": macro_f1(y, pred), "micro_f1": micro_f1(y, pred)}
        x = self._features(texts, fit=True, headings=heads)
        self.coef_, self.intercept_ = self._fit_heads(x, y)
        return self

    def out_of_fold_scores(self, texts: list[str], y: np.ndarray, groups: Sequence[str] | None,
                           headings: list[str] | None = None) -> np.ndarray:
        """Scores of each passage from a model fitted without its fold (for threshold tuning)."""
        from sklearn.model_selection import GroupKFold, KFold

        oof = np.zeros(y.shape, dtype=np.float64)
        n_groups = len(set(groups)) if groups is not None else len(texts)
        folds = min(self.threshold_folds, n_groups)
        if folds < 2:
            return np.full(y.shape, 0.5)
        if groups is not None:
            splits = GroupKFold(n_splits=folds).split(texts, groups=list(groups))
        else:
            splits = KFold(n_splits=folds, shuffle=True, random_state=self.seed).split(texts)
        heads = headings or [""] * len(texts)
        for train_idx, test_idx in splits:
            inner = TfidfClassifier(**self.params())
            x_train = inner._features([texts[i] for i in train_idx], fit=True, headings=[heads[i] for i in train_idx])
            inner.coef_, inner.intercept_ = inner._fit_heads(x_train, y[train_idx])
            oof[test_idx] = inner.predict_proba([texts[i] for i in test_idx], [heads[i] for i in test_idx])
        return oof

    # ------------------------------------------------------------ inference
    def predict_proba(self, texts: Sequence[str], headings: Sequence[str] | None = None) -> np.ndarray:
        """(n, 7) probabilities, columns in codebook order (``headings`` used if ``use_heading``)."""
        if not hasattr(self, "coef_"):
            raise ModelError("the model is not fitted")
        if len(texts) == 0:
            return np.zeros((0, len(self.labels)))
        x = self._features(list(texts), fit=False, headings=headings)
        z = np.asarray(x @ self.coef_.T) + self.intercept_
        return 1.0 / (1.0 + np.exp(-z))

    # ------------------------------------------------------------ persistence
    def _save_weights(self, directory: Path) -> None:
        # Vocabularies go in as one NUL-joined UTF-8 string (stored as bytes) + idf array; deflated (lossless):
        # the shipped v3 model is 27 MB stored, 16 MB compressed (repository limit 25 MB).
        state: dict[str, np.ndarray] = {"coef": np.asarray(self.coef_, dtype=np.float64),
                                        "intercept": np.asarray(self.intercept_, dtype=np.float64)}
        for name in self._blocks():
            vec = getattr(self, f"{name}_vectorizer_")
            terms = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
            if any(SEP in t for t in terms):
                raise ModelError("a vocabulary term contains a NUL character; cannot save")
            state[f"{name}_terms"] = np.frombuffer(SEP.join(terms).encode("utf-8"), dtype=np.uint8)
            state[f"{name}_idf"] = np.asarray(vec.idf_, dtype=np.float64)
        with (directory / WEIGHTS_FILE).open("wb") as f:
            np.savez_compressed(f, **state)
        (directory / LEGACY_WEIGHTS_FILE).unlink(missing_ok=True)  # re-saved in place: one weights file

    def _read_state(self, directory: Path) -> dict[str, Any]:
        """The saved arrays (terms decoded to str); legacy skops files through :meth:`_read_legacy_state`.

        Raises:
            ModelFileError: the file is missing, an LFS pointer, unreadable, or lacks an array.
            ModelError: it holds something other than plain numeric arrays.
        """
        from policyclf.models.base import check_model_file, damaged_file

        path = directory / WEIGHTS_FILE
        if not path.is_file() and (directory / LEGACY_WEIGHTS_FILE).is_file():
            return self._read_legacy_state(directory / LEGACY_WEIGHTS_FILE)
        check_model_file(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                state = {k: z[k] for k in z.files}
        except ValueError as exc:
            if "allow_pickle" in str(exc):  # an object array: never unpickled
                raise ModelError(f"{path}: refuses to load an array of Python objects (pickle)") from exc
            raise damaged_file(path, f"not a readable .npz file: {type(exc).__name__}: {exc}") from exc
        except Exception as exc:
            raise damaged_file(path, f"not a readable .npz file: {type(exc).__name__}: {exc}") from exc
        needed = ["coef", "intercept", *(f"{n}_{part}" for n in self._blocks() for part in ("terms", "idf"))]
        missing = [k for k in needed if k not in state]
        if missing:
            raise damaged_file(path, f"arrays {missing} missing")
        for key, arr in state.items():
            if arr.dtype.kind not in "fu":
                raise ModelError(f"{path}: refuses array {key!r} of dtype {arr.dtype} (numbers only)")
        for name in self._blocks():
            try:
                state[f"{name}_terms"] = state[f"{name}_terms"].tobytes().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise damaged_file(path, f"vocabulary {name!r} is not UTF-8") from exc
        return state

    @staticmethod
    def _read_legacy_state(path: Path) -> dict[str, Any]:
        """A ``tfidf.skops`` file (models saved before 2026-12-07), loaded against :data:`TRUSTED_TYPES`."""
        import skops.io as sio

        from policyclf.models.base import check_model_file, damaged_file

        check_model_file(path)
        try:
            untrusted = sio.get_untrusted_types(file=path)
        except Exception as exc:
            raise damaged_file(path, f"not a readable skops file: {type(exc).__name__}: {exc}") from exc
        unexpected = sorted(set(untrusted) - set(TRUSTED_TYPES))
        if unexpected:
            raise ModelError(f"{path}: refuses to load untrusted types {unexpected}")
        try:
            return sio.load(path, trusted=list(untrusted))
        except Exception as exc:
            raise damaged_file(path, f"{type(exc).__name__}: {exc}") from exc

    def _load_weights(self, directory: Path) -> None:
        state = self._read_state(directory)
        self.coef_ = np.asarray(state["coef"])
        self.intercept_ = np.asarray(state["intercept"])
        for name in self._blocks():
            terms = state[f"{name}_terms"].split(SEP)
            vec = self._new_vectorizer(name, vocabulary={t: i for i, t in enumerate(terms)})
            vec.idf_ = np.asarray(state[f"{name}_idf"])
            setattr(self, f"{name}_vectorizer_", vec)
