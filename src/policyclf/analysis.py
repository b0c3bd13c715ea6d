"""``analyze``: category prevalence per group from labelled passages, corrected for the model's errors.

Three estimates per group × category, side by side:

- **raw**: classify and count, the share of passages (``unit="passage"``) or of documents with at least
  one passage (``unit="document"``) that the model gave the category;
- **corrected**: the raw share adjusted with the model's held-out true- and false-positive rates
  (``error_rates.json`` in the model directory, :mod:`policyclf.error_rates`) by quapy's adjusted
  classify and count (ACC; or PACC on mean scores), clipped to [0, 1];
- **gold-anchored** (with coded passages of the same collection): prediction-powered inference
  (``ppi_py.ppi_mean_ci``), all predictions combined with the coded sample.

Raw and corrected intervals are percentile intervals of a bootstrap over documents within each group;
the corrected one also resamples the held-out documents the error rates came from, so it carries
their uncertainty. Groups are compared by a permutation test over documents (chi-square statistic,
Cramér's V) and pairwise differences of the corrected shares with Bonferroni-wide intervals and
Holm-adjusted p-values.
"""

from __future__ import annotations

import csv
import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.corpus import read_jsonl, text_sha1
from policyclf.error_rates import ErrorRates, doc_of, load_error_rates
from policyclf.errors import DataError, PolicyclfError
from policyclf.labels import CATEGORIES

UNITS = ("passage", "document")
METHODS = ("acc", "pacc")
FOLDER_KEY = "folder"
TOP_LEVEL = "(top level)"
ALL_GROUP = "all"
ALPHA = 0.05
OUTPUT_FILES = ("prevalence.csv", "prevalence.xlsx", "analysis.json", "analysis.html")


class AnalysisWarning(UserWarning):
    """Something in the input was left out or an estimate is fragile; the message names it."""


@dataclass
class Labelled:
    """Labelled passages in input order: ids, documents, decisions (n, 7) and scores (n, 7)."""

    passage_ids: list[str]
    docs: list[str]
    pred: np.ndarray
    scores: np.ndarray
    fields: list[dict[str, Any]]
    source: dict[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------ input

def _check_row(rec: dict[str, Any], where: str) -> tuple[str, np.ndarray, np.ndarray]:
    pid = rec.get("passage_id")
    labels, scores = rec.get("labels"), rec.get("scores")
    if not isinstance(pid, str) or not isinstance(labels, list) or not isinstance(scores, dict):
        raise DataError(f"{where}: expected a predict/label row with 'passage_id', 'labels' and 'scores'")
    unknown = [x for x in labels if x not in CATEGORIES] + [x for x in scores if x not in CATEGORIES]
    if unknown:
        raise DataError(f"{where}: unknown category {unknown[0]!r} — expected one of {', '.join(CATEGORIES)}")
    missing = [c for c in CATEGORIES if c not in scores]
    if missing:
        raise DataError(f"{where}: 'scores' lacks {', '.join(missing)} (rows need all seven)")
    return pid, np.array([c in labels for c in CATEGORIES]), np.array([float(scores[c]) for c in CATEGORIES])


def load_labelled(path: str | os.PathLike[str]) -> Labelled:
    """Rows of a ``label`` output folder (its ``passages.jsonl``) or of a ``predict`` ``.jsonl``.

    Raises:
        DataError: no such input, a folder that is not a ``label`` output, malformed rows, duplicate ids.
    """
    path = Path(path)
    source: dict[str, Any] = {"input": str(path)}
    if path.is_dir():
        rows_file = path / "passages.jsonl"
        if not rows_file.is_file():
            raise DataError(f"{path}: not a label output folder (no passages.jsonl); pass a folder written by "
                            "'policyclf label' or a 'policyclf predict' .jsonl")
        source["kind"] = "label"
        run = path / ".work" / "run.json"
        if run.is_file():
            info = json.loads(run.read_text(encoding="utf-8"))
            source["model"] = info.get("settings", info).get("model")
    elif path.is_file():
        if path.suffix.lower() != ".jsonl":
            raise DataError(f"{path}: expected a label output folder or a predict .jsonl (a .csv has no doc field; "
                            "rerun predict with -o FILE.jsonl)")
        rows_file = path
        source["kind"] = "predict"
    else:
        raise DataError(f"{path}: no such file or folder")
    pids, docs, preds, scores, fields = [], [], [], [], []
    seen: dict[str, int] = {}
    for lineno, rec in read_jsonl(rows_file):
        where = f"{rows_file} line {lineno}"
        pid, pred, score = _check_row(rec, where)
        if pid in seen:
            raise DataError(f"{where}: passage {pid!r} also on line {seen[pid]}")
        seen[pid] = lineno
        pids.append(pid)
        docs.append(str(rec["doc"]) if rec.get("doc") else doc_of(pid))
        preds.append(pred)
        scores.append(score)
        fields.append({k: v for k, v in rec.items() if k not in ("labels", "scores", "near_threshold")})
    if not pids:
        raise DataError(f"{rows_file}: no labelled passages")
    return Labelled(pids, docs, np.array(preds, dtype=bool), np.array(scores), fields, source)


def read_metadata(path: str | os.PathLike[str]) -> tuple[str, dict[str, dict[str, str]]]:
    """A metadata CSV: ``(id column, {id: row})``; the id column is ``doc`` or ``passage_id``.

    Raises:
        DataError: no id column, an empty file, or one id with two different rows.
    """
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from exc
    with handle:
        reader = csv.DictReader(handle)
        cols = reader.fieldnames or []
        key = "doc" if "doc" in cols else "passage_id" if "passage_id" in cols else None
        if key is None:
            raise DataError(f"{path}: needs a 'doc' or 'passage_id' column first; it has {', '.join(cols) or 'no header'}")
        out: dict[str, dict[str, str]] = {}
        for lineno, row in enumerate(reader, 2):
            ident = (row.get(key) or "").strip()
            if not ident:
                raise DataError(f"{path} line {lineno}: empty {key!r}")
            row = {k: (v or "").strip() for k, v in row.items() if k is not None}
            if ident in out and out[ident] != row:
                raise DataError(f"{path} line {lineno}: {key} {ident!r} appears twice with different values")
            out[ident] = row
    if not out:
        raise DataError(f"{path}: no rows")
    return key, out


def _named(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(repr(x) for x in list(items)[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def _warn(message: str, sink: list[str]) -> None:
    sink.append(message)
    warnings.warn(message, AnalysisWarning, stacklevel=3)


def assign_groups(data: Labelled, group_by: str | None, metadata: str | os.PathLike[str] | None,
                  notes: list[str]) -> tuple[list[str | None], dict[str, str]]:
    """The group of every passage (None: left out, with a warning) and a title per document.

    Raises:
        DataError: an unknown key, metadata whose ids match no passage, or no passage left in any group.
    """
    n = len(data.passage_ids)
    titles: dict[str, str] = {}
    meta_rows: list[dict[str, str] | None] = [None] * n
    if metadata is not None:
        id_col, meta = read_metadata(metadata)
        ids = data.docs if id_col == "doc" else data.passage_ids
        meta_rows = [meta.get(i) for i in ids]
        used = set(ids) & set(meta)
        if not used:
            raise DataError(f"{metadata}: none of its {len(meta)} {id_col} ids matches the input's "
                            f"(input {id_col}s look like {_named(sorted(set(ids)), 2)}; metadata has {_named(sorted(meta), 2)})")
        unmatched = sorted(set(meta) - used)
        if unmatched:
            _warn(f"{metadata}: {len(unmatched)} {id_col} id(s) match no input passage: {_named(unmatched)}", notes)
        cols = list(next(iter(meta.values())).keys())
        if group_by and group_by not in cols and group_by != FOLDER_KEY:
            raise DataError(f"--group-by {group_by!r}: not a column of {metadata}; it has {', '.join(cols)}")
        for doc, row in zip(data.docs, meta_rows):
            if row and row.get("title"):
                titles.setdefault(doc, row["title"])
    groups: list[str | None]
    if not group_by:
        groups = [ALL_GROUP] * n
    elif group_by == FOLDER_KEY:
        groups = [d.split("/", 1)[0] if "/" in d else TOP_LEVEL for d in data.docs]
        if data.source.get("kind") != "label":
            _warn("--group-by folder reads the first folder of each passage's document path; "
                  "this input is not a label folder", notes)
        top = sorted({d for d in data.docs if "/" not in d})
        if top:
            _warn(f"{len(top)} document(s) sit at the top level of the labelled folder (group {TOP_LEVEL!r}): {_named(top)}",
                  notes)
    elif metadata is not None:
        groups = [row.get(group_by) or None if row else None for row in meta_rows]
        no_meta = sorted({d for d, r in zip(data.docs, meta_rows) if r is None})
        if no_meta:
            _warn(f"{len(no_meta)} document(s) have no row in {metadata} and are left out: {_named(no_meta)}", notes)
        blank = sorted({d for d, r, g in zip(data.docs, meta_rows, groups) if r is not None and g is None})
        if blank:
            _warn(f"{len(blank)} document(s) have an empty {group_by!r} in {metadata} and are left out: {_named(blank)}",
                  notes)
    else:
        present = [group_by in f for f in data.fields]
        if not any(present):
            keys = sorted({k for f in data.fields for k in f})
            raise DataError(f"--group-by {group_by!r}: not a field of the input rows ({', '.join(keys)}); "
                            "pass --metadata FILE.csv with that column, or --group-by folder for a label folder")
        groups = [str(f[group_by]) if f.get(group_by) not in (None, "") else None for f in data.fields]
        lacking = sorted({p for p, g in zip(data.passage_ids, groups) if g is None})
        if lacking:
            _warn(f"{len(lacking)} passage(s) have no {group_by!r} and are left out: {_named(lacking)}", notes)
    if all(g is None for g in groups):
        raise DataError("no passage is left in any group; check --group-by and --metadata")
    return groups, titles


def read_gold(path: str | os.PathLike[str], data: Labelled, texts: Mapping[str, str] | None) -> dict[str, np.ndarray]:
    """Coded passages (standoff records: ``passage_id``, ``labels``, optional ``text_sha1``) keyed by id.

    Raises:
        DataError: a malformed record, an unknown label, a duplicate, ids that match no input passage,
            or a ``text_sha1`` that differs from the text given with ``texts``.
    """
    path = Path(path)
    known = set(data.passage_ids)
    out: dict[str, np.ndarray] = {}
    unknown: list[str] = []
    for lineno, rec in read_jsonl(path):
        where = f"{path} line {lineno}"
        pid, labels = rec.get("passage_id"), rec.get("labels")
        if not isinstance(pid, str) or not isinstance(labels, list):
            raise DataError(f"{where}: expected a record with 'passage_id' and a 'labels' list")
        bad = [x for x in labels if x not in CATEGORIES]
        if bad:
            raise DataError(f"{where}: unknown label {bad[0]!r} — expected one of {', '.join(CATEGORIES)}")
        if pid in out:
            raise DataError(f"{where}: duplicate record for {pid!r}")
        if pid not in known:
            unknown.append(pid)
            continue
        if texts is not None and rec.get("text_sha1") and pid in texts and text_sha1(texts[pid]) != rec["text_sha1"]:
            raise DataError(f"{where}: text_sha1 of {pid!r} does not match the passage text given with --texts "
                            "(the passage changed since it was coded)")
        out[pid] = np.array([c in labels for c in CATEGORIES])
    if unknown:
        raise DataError(f"{path}: {len(unknown)} coded passage id(s) are not in the input: {_named(unknown)}; "
                        "--gold must code passages of the same collection")
    if not out:
        raise DataError(f"{path}: no coded passages")
    return out


def read_texts(path: str | os.PathLike[str]) -> dict[str, str]:
    """Passage texts for excerpts: a passage ``.jsonl`` (``passage_id``/``id``, ``text``) or the folder of
    documents that was labelled (segmented again; ids ``<relative path>:<seq>``)."""
    path = Path(path)
    if path.is_file():
        from policyclf.predict import read_passage_jsonl

        return {it.passage_id: it.text for it in read_passage_jsonl(path)}
    if path.is_dir():
        from policyclf.scoring import process_document
        from policyclf.segment import find_documents

        out: dict[str, str] = {}
        for doc in find_documents(path):
            res = process_document((str(path), doc.relative_to(path).as_posix(), 50_000_000))
            out.update({it.passage_id: it.text for it in res.items()})
        return out
    raise DataError(f"--texts {path}: no such file or folder")


# ------------------------------------------------------------------ estimates

def adjust(raw: np.ndarray, tpr: np.ndarray, fpr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """quapy's ACC adjustment per category, ``raw`` (..., 7) with rates broadcast: (unclipped, clipped).

    Solves ``q = M p`` for the binary problem of each category with ``M = [[1-FPR, 1-TPR], [FPR, TPR]]``
    (``quapy ACC.solve_adjustment``, exact inversion), then clips with ``quapy.functional.normalize_prevalence``.
    NaN where TPR ≤ FPR (the adjustment is undefined) or a rate is unknown.
    """
    from quapy.method.aggregative import ACC
    import quapy.functional as qf

    raw = np.asarray(raw, dtype=float)
    tpr, fpr = np.broadcast_to(tpr, raw.shape), np.broadcast_to(fpr, raw.shape)
    unclipped = np.full(raw.shape, np.nan)
    clipped = np.full(raw.shape, np.nan)
    for idx in np.ndindex(raw.shape):
        t, f, q = tpr[idx], fpr[idx], raw[idx]
        if not (np.isfinite(t) and np.isfinite(f) and np.isfinite(q)) or t - f <= 1e-9:
            continue
        m = np.array([[1 - f, 1 - t], [f, t]])
        p = ACC.solve_adjustment(class_conditional_rates=m, unadjusted_counts=np.array([1 - q, q]),
                                 method="inversion", solver="exact-raise")
        unclipped[idx] = p[1]
        clipped[idx] = qf.normalize_prevalence(p, method="clip")[1]
    return unclipped, clipped


@dataclass
class _GroupData:
    name: str
    docs: list[str]
    n: np.ndarray  # passages per document (D,)
    k: np.ndarray  # labelled passages per document × category (D, 7)
    s: np.ndarray  # sum of scores per document × category (D, 7)
    any_pred: np.ndarray  # document has ≥ 1 labelled passage (D, 7)
    rows: np.ndarray  # input row indices of the group's passages


def _group_data(data: Labelled, groups: Sequence[str | None]) -> list[_GroupData]:
    order: dict[str, dict[str, list[int]]] = {}
    for i, g in enumerate(groups):
        if g is not None:
            order.setdefault(g, {}).setdefault(data.docs[i], []).append(i)
    out = []
    for g in sorted(order, key=_natural):
        by_doc = order[g]
        docs = list(by_doc)
        idx = [np.array(by_doc[d]) for d in docs]
        k = np.array([data.pred[i].sum(0) for i in idx], dtype=float)
        out.append(_GroupData(g, docs, np.array([len(i) for i in idx], dtype=float), k,
                              np.array([data.scores[i].sum(0) for i in idx]), (k > 0).astype(float),
                              np.concatenate(idx)))
    return out


def _natural(name: str) -> tuple[Any, ...]:
    return (0, float(name), name) if name.replace(".", "", 1).isdigit() else (1, 0.0, name)


def _share(g: _GroupData, unit: str, method: str, w: np.ndarray | None = None) -> np.ndarray:
    """Raw share per category (the unadjusted count for the method): weights ``w`` (B, D) resample documents."""
    if unit == "document":
        return (w @ g.any_pred) / w.sum(1, keepdims=True) if w is not None else g.any_pred.mean(0)
    num = g.s if method == "pacc" else g.k
    if w is None:
        return num.sum(0) / g.n.sum()
    return (w @ num) / (w @ g.n)[:, None]


def _weights(rng: np.random.Generator, d: int, n_boot: int) -> np.ndarray:
    """Bootstrap resamples of ``d`` units as counts (n_boot, d)."""
    return rng.multinomial(d, np.full(d, 1.0 / d), size=n_boot).astype(float)


def _pct(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanpercentile(x, 100 * ALPHA / 2, axis=0), np.nanpercentile(x, 100 * (1 - ALPHA / 2), axis=0)


def gold_anchored(y: np.ndarray, yhat: np.ndarray, yhat_unlabelled: np.ndarray) -> tuple[float, float, float]:
    """Prediction-powered estimate of a mean with its 95 % interval (``ppi_py``); a census (no
    unlabelled rows) gives the coded mean with ppi_py's classical interval."""
    with warnings.catch_warnings():  # importing ppi_py runs warnings.simplefilter("ignore"): keep it local
        import ppi_py

    y, yhat, yu = (np.asarray(a, dtype=float) for a in (y, yhat, yhat_unlabelled))
    if len(yu) == 0:
        lo, hi = ppi_py.classical_mean_ci(y, alpha=ALPHA)
        return float(y.mean()), float(np.clip(np.ravel(lo)[0], 0, 1)), float(np.clip(np.ravel(hi)[0], 0, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        est = ppi_py.ppi_mean_pointestimate(y, yhat, yu)
        lo, hi = ppi_py.ppi_mean_ci(y, yhat, yu, alpha=ALPHA)
    return float(np.ravel(est)[0]), float(np.clip(np.ravel(lo)[0], 0, 1)), float(np.clip(np.ravel(hi)[0], 0, 1))


def _chi2_stats(tables: np.ndarray) -> np.ndarray:
    """Pearson chi-square statistic of each table in a stack (..., G, C); cells with zero expectation
    (an empty row or column) add nothing, as if that row or column were dropped."""
    n = tables.sum(axis=(-2, -1), keepdims=True)
    expected = tables.sum(-1, keepdims=True) * tables.sum(-2, keepdims=True) / np.where(n > 0, n, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(expected > 0, (tables - expected) ** 2 / expected, 0.0)
    return terms.sum(axis=(-2, -1))


def permutation_test(doc_groups: np.ndarray, doc_counts: np.ndarray, *, n_perm: int, seed: int) -> dict[str, Any]:
    """Does the category mix differ between groups? Chi-square statistic of the group × column table of
    counts (``scipy.stats.chi2_contingency`` on the observed table), p-value from permuting group labels
    over whole documents, Cramér's V of the observed table.

    Args:
        doc_groups: the group of each document (D,).
        doc_counts: counts per document and column (D, C), e.g. labelled passages per category.
    """
    from scipy.stats import chi2_contingency

    uniq, codes = np.unique(doc_groups, return_inverse=True)
    onehot = np.eye(len(uniq))[codes]  # (D, G)
    obs = onehot.T @ doc_counts
    kept = obs[obs.sum(1) > 0][:, obs.sum(0) > 0]
    if kept.shape[0] < 2 or kept.shape[1] < 2:
        return {"chi2": None, "p_permutation": None, "p_asymptotic": None, "cramers_v": None, "n": int(obs.sum()),
                "note": "fewer than two non-empty groups or columns"}
    chi2, p_asym, dof, _ = chi2_contingency(kept, correction=False)
    rng = np.random.default_rng(seed)
    hits = 0
    for start in range(0, n_perm, 200):
        perms = np.array([rng.permutation(codes) for _ in range(min(200, n_perm - start))])  # (P, D)
        tables = np.einsum("pdg,dc->pgc", np.eye(len(uniq))[perms], doc_counts)
        hits += int(np.sum(_chi2_stats(tables) >= chi2 * (1 - 1e-9)))
    n = kept.sum()
    return {"chi2": float(chi2), "dof": int(dof), "p_permutation": (hits + 1) / (n_perm + 1),
            "p_asymptotic": float(p_asym), "cramers_v": math.sqrt(chi2 / (n * (min(kept.shape) - 1))),
            "n": int(n), "n_permutations": n_perm}


@dataclass
class AnalysisResult:
    out_dir: Path
    prevalence: list[dict[str, Any]]
    report: dict[str, Any]
    warnings: list[str]


def analyze(input_path: str | os.PathLike[str], out_dir: str | os.PathLike[str], *, group_by: str | None = None,
            metadata: str | os.PathLike[str] | None = None, model_dir: str | os.PathLike[str] | None = None,
            gold: str | os.PathLike[str] | None = None, unit: str = "passage", method: str = "acc",
            texts: str | os.PathLike[str] | None = None, excerpt_chars: int = 80, evidence: int = 5,
            n_boot: int = 1000, n_perm: int = 2000, seed: int = 0, rates_doc_type: str | None = None,
            rates_by_group: Mapping[str, ErrorRates] | None = None, force: bool = False,
            title: str = "") -> AnalysisResult:
    """Prevalence per group × category (raw, corrected, gold-anchored), group tests and evidence → ``out_dir``.

    Args:
        input_path: a ``label`` output folder or a ``predict`` ``.jsonl``.
        group_by: a metadata column, ``folder`` (first folder level of a labelled folder), or a row field;
            None: one group of everything.
        metadata: CSV with a ``doc`` or ``passage_id`` column and any others (``title`` names documents).
        model_dir: whose ``error_rates.json`` corrects; default: the model that made the labels (label
            folders record it), else the default model.
        gold: coded passages of the same collection (standoff ``.jsonl``) → gold-anchored estimates.
        unit: ``passage`` or ``document`` (a document counts if any of its passages has the category).
        method: ``acc`` (decisions) or ``pacc`` (mean scores; passage unit only).
        texts: passage texts for evidence excerpts (passage ``.jsonl`` or the labelled documents' folder).
        excerpt_chars: longest excerpt (and document title) in the evidence tables.
        rates_doc_type: correct with the held-out rates of one document type only.
        rates_by_group: library only: error rates per group (e.g. each region's from the other regions).

    Raises:
        PolicyclfError: bad input, metadata, gold file or model directory; an existing output without ``force``.
    """
    if unit not in UNITS:
        raise PolicyclfError(f"--unit {unit!r}: expected one of {', '.join(UNITS)}")
    if method not in METHODS:
        raise PolicyclfError(f"--method {method!r}: expected one of {', '.join(METHODS)}")
    if method == "pacc" and unit == "document":
        raise PolicyclfError("--method pacc works on passage shares only; use --method acc with --unit document")
    if excerpt_chars < 0 or n_boot < 10 or evidence < 0:
        raise PolicyclfError("--excerpt-chars and --evidence must be ≥ 0 and --n-boot ≥ 10")
    out = Path(out_dir)
    existing = [f for f in OUTPUT_FILES if (out / f).exists()]
    if existing and not force:
        raise PolicyclfError(f"{out} already holds {', '.join(existing)}; pass --force to overwrite")
    notes: list[str] = []
    data = load_labelled(input_path)
    groups, titles = assign_groups(data, group_by, metadata, notes)
    text_map = read_texts(texts) if texts else None
    if text_map is not None:
        missing = [p for p in data.passage_ids if p not in text_map]
        if missing:
            _warn(f"--texts: {len(missing)} passage(s) have no text there (no excerpt): {_named(missing)}", notes)
    gold_map = read_gold(gold, data, text_map) if gold else None

    from policyclf.predict import default_model_dir

    model_path = Path(model_dir) if model_dir else Path(data.source["model"]) if data.source.get("model") else default_model_dir()
    rates = load_error_rates(model_path)
    if rates_doc_type:
        rates = rates.of_doc_type(rates_doc_type)
    gdata = _group_data(data, groups)
    for g in gdata:
        if len(g.docs) < 2:
            _warn(f"group {g.name!r} has {len(g.docs)} document: its bootstrap interval is degenerate "
                  "(one document resampled is itself)", notes)
    rng = np.random.default_rng([seed, 1])  # documents of the groups; the error rates have their own stream
    wr_shared = _weights(np.random.default_rng([seed, 2]), len(rates), n_boot)
    prevalence, boot_corr, boot_raw = [], {}, {}
    clipped_any = []
    for g in gdata:
        gr = rates_by_group.get(g.name, rates) if rates_by_group else rates
        if gr is rates:
            wr = wr_shared
        else:
            wr = _weights(np.random.default_rng([seed, 3, len(gr)]), len(gr), n_boot)
        tpr, fpr = gr.rates(method, unit)
        tpr_b, fpr_b = gr.rates(method, unit, wr)
        w = _weights(rng, len(g.docs), n_boot)
        raw = _share(g, unit, "acc")
        raw_b = _share(g, unit, "acc", w)
        q, q_b = (raw, raw_b) if method == "acc" else (_share(g, unit, "pacc"), _share(g, unit, "pacc", w))
        unclipped, corrected = adjust(q, tpr, fpr)
        _, corr_b = adjust(q_b, tpr_b, fpr_b)
        boot_corr[g.name], boot_raw[g.name] = corr_b, raw_b
        raw_lo, raw_hi = _pct(raw_b)
        c_lo, c_hi = _pct(corr_b)
        n_docs_with = g.any_pred.sum(0)
        for j, cat in enumerate(CATEGORIES):
            was_clipped = bool(np.isfinite(unclipped[j]) and (unclipped[j] < 0 or unclipped[j] > 1))
            if was_clipped:
                clipped_any.append(f"{g.name}/{cat} ({unclipped[j]:+.3f})")
            if not np.isfinite(corrected[j]):
                c = gr.counts(unit=unit)
                _warn(f"{g.name}/{cat}: no corrected estimate: the held-out documents give TPR "
                      f"{int(c['tp'][j])}/{int(c['pos'][j])} and FPR {int(c['fp'][j])}/{int(c['neg'][j])} "
                      "(the adjustment needs TPR > FPR)", notes)
            prevalence.append({
                "group": g.name, "category": cat, "n_docs": len(g.docs), "n_passages": int(g.n.sum()),
                "raw": float(raw[j]), "raw_lo": float(raw_lo[j]), "raw_hi": float(raw_hi[j]),
                "corrected": float(corrected[j]), "corrected_lo": float(c_lo[j]), "corrected_hi": float(c_hi[j]),
                "corrected_unclipped": float(unclipped[j]), "clipped": was_clipped,
                "tpr": float(tpr[j]), "fpr": float(fpr[j]), "n_labelled": int(g.k[:, j].sum()),
                "n_docs_labelled": int(n_docs_with[j]),
                "rates_from": gr.info.get("subset", "all held-out documents"),
            })
    if clipped_any:
        _warn(f"corrected estimates clipped to [0, 1]: {_named(clipped_any, 8)}", notes)
    if gold_map is not None:
        _add_gold(prevalence, gdata, data, gold_map, unit, notes)
    tests = _group_tests(gdata, unit, n_perm, seed)
    pairwise = _pairwise(gdata, prevalence, boot_corr, boot_raw)
    report = {
        "title": title or "policyclf analyze",
        "settings": {"input": str(input_path), "input_kind": data.source.get("kind"), "group_by": group_by,
                     "metadata": str(metadata) if metadata else None, "model": str(model_path),
                     "gold": str(gold) if gold else None, "unit": unit, "method": method, "n_boot": n_boot,
                     "n_permutations": n_perm, "seed": seed, "alpha": ALPHA, "rates_doc_type": rates_doc_type,
                     "rates_per_group": bool(rates_by_group), "excerpt_chars": excerpt_chars},
        "error_rates": {"source": {k: v for k, v in rates.info.items()}, "n_documents": len(rates),
                        "n_passages": int(rates.n.sum()), "totals": rates.summary()},
        "groups": [{"group": g.name, "n_docs": len(g.docs), "n_passages": int(g.n.sum())} for g in gdata],
        "prevalence": prevalence,
        "tests": tests,
        "pairwise": pairwise,
        "cooccurrence": _cooccurrence(data, groups),
        "evidence": _evidence(gdata, data, titles, text_map, excerpt_chars, evidence),
        "warnings": notes,
    }
    out.mkdir(parents=True, exist_ok=True)
    _write_outputs(out, report, gold_map is not None)
    return AnalysisResult(out, prevalence, report, notes)


def _add_gold(prevalence: list[dict[str, Any]], gdata: list[_GroupData], data: Labelled, gold: dict[str, np.ndarray],
              unit: str, notes: list[str]) -> None:
    index = {(r["group"], r["category"]): r for r in prevalence}
    for g in gdata:
        if unit == "passage":
            coded = np.array([data.passage_ids[i] in gold for i in g.rows])
            y = np.array([gold[data.passage_ids[i]] for i in g.rows[coded]]).reshape(-1, 7)
            yhat, yu = data.pred[g.rows[coded]], data.pred[g.rows[~coded]]
        else:  # a document is coded when every one of its passages is
            by_doc: dict[str, list[int]] = {}
            for i in g.rows:
                by_doc.setdefault(data.docs[i], []).append(i)
            full = [d for d in g.docs if all(data.passage_ids[i] in gold for i in by_doc[d])]
            y = np.array([np.any([gold[data.passage_ids[i]] for i in by_doc[d]], axis=0) for d in full]).reshape(-1, 7)
            yhat = np.array([data.pred[by_doc[d]].any(0) for d in full]).reshape(-1, 7)
            yu = np.array([data.pred[by_doc[d]].any(0) for d in g.docs if d not in set(full)]).reshape(-1, 7)
        n_gold = len(y)
        if n_gold < 2:  # also a group the coded sample does not reach: its gold columns stay empty
            _warn(f"group {g.name!r}: {n_gold} coded {unit}(s); no gold-anchored estimate", notes)
            for cat in CATEGORIES:
                index[(g.name, cat)].update(gold_anchored=None, gold_lo=None, gold_hi=None, n_gold=n_gold)
            continue
        if n_gold < 30:
            _warn(f"group {g.name!r}: only {n_gold} coded {unit}s; the gold-anchored interval rests on a normal "
                  "approximation that needs more", notes)
        for j, cat in enumerate(CATEGORIES):
            est, lo, hi = gold_anchored(y[:, j], yhat[:, j], yu[:, j] if len(yu) else np.empty(0))
            index[(g.name, cat)].update(gold_anchored=est, gold_lo=lo, gold_hi=hi, n_gold=n_gold)


def _group_tests(gdata: list[_GroupData], unit: str, n_perm: int, seed: int) -> dict[str, Any]:
    if len(gdata) < 2:
        return {"note": "one group: nothing to compare"}
    doc_groups = np.array([g.name for g in gdata for _ in g.docs])
    counts = np.concatenate([g.any_pred if unit == "document" else g.k for g in gdata])
    totals = np.concatenate([np.ones(len(g.docs)) if unit == "document" else g.n for g in gdata])
    overall = permutation_test(doc_groups, counts, n_perm=n_perm, seed=seed)
    overall["table"] = "groups × categories: " + ("documents with the category" if unit == "document"
                                                  else "labelled passages") + " (raw decisions)"
    per_cat = {}
    for j, cat in enumerate(CATEGORIES):
        two = np.stack([counts[:, j], totals - counts[:, j]], axis=1)
        per_cat[cat] = permutation_test(doc_groups, two, n_perm=n_perm, seed=seed + 1 + j)
    from statsmodels.stats.multitest import multipletests

    ps = [(c, r["p_permutation"]) for c, r in per_cat.items() if r.get("p_permutation") is not None]
    if ps:
        adj = multipletests([p for _, p in ps], alpha=ALPHA, method="holm")[1]
        for (c, _), a in zip(ps, adj):
            per_cat[c]["p_holm"] = float(a)
    return {"overall": overall, "per_category": per_cat,
            "method": "permutation test over documents (group labels shuffled between whole documents) of the "
                      "chi-square statistic; Cramér's V of the observed table; per-category p-values Holm-adjusted. "
                      "Run on the raw decisions: with one set of error rates for all groups the correction is the "
                      "same monotone map in every group, so equal corrected shares mean equal expected raw shares."}


def _pairwise(gdata: list[_GroupData], prevalence: list[dict[str, Any]], boot_corr: dict[str, np.ndarray],
              boot_raw: dict[str, np.ndarray]) -> dict[str, Any]:
    from scipy.stats import norm
    from statsmodels.stats.multitest import multipletests

    index = {(r["group"], r["category"]): r for r in prevalence}
    names = [g.name for g in gdata]
    pairs = [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]
    m = len(pairs) * len(CATEGORIES)
    if not m:
        return {"rows": [], "note": "one group: no pairs"}
    z = float(norm.ppf(1 - ALPHA / (2 * m)))
    single = {g.name for g in gdata if len(g.docs) < 2}
    rows = []
    for a, b in pairs:
        for j, cat in enumerate(CATEGORIES):
            d_b = boot_corr[a][:, j] - boot_corr[b][:, j]
            diff = index[(a, cat)]["corrected"] - index[(b, cat)]["corrected"]
            # a one-document group has no between-document spread to resample: no interval, no test
            se = float(np.nanstd(d_b, ddof=1)) if np.isfinite(d_b).sum() > 1 and not {a, b} & single else float("nan")
            p = (float(2 * norm.sf(abs(diff) / se)) if se > 0 and np.isfinite(diff)
                 else 1.0 if diff == 0 and np.isfinite(se) else float("nan"))
            rows.append({"group_a": a, "group_b": b, "category": cat, "diff": diff, "se": se,
                         "lo": diff - z * se, "hi": diff + z * se, "p": p,
                         "raw_diff": index[(a, cat)]["raw"] - index[(b, cat)]["raw"]})
    ok = [i for i, r in enumerate(rows) if np.isfinite(r["p"])]
    if ok:
        adj = multipletests([rows[i]["p"] for i in ok], alpha=ALPHA, method="holm")[1]
        for i, a in zip(ok, adj):
            rows[i]["p_holm"] = float(a)
    return {"rows": rows, "comparisons": m, "z": z,
            "method": f"corrected share of group_a − group_b; standard error from the document bootstrap (the same "
                      f"error-rate resample in both groups); intervals ±{z:.2f} SE (Bonferroni over {m} comparisons, "
                      "family-wise 95 %); p from the normal approximation, Holm-adjusted"
                      + (f"; none for the one-document group(s) {', '.join(sorted(single))}" if single else "")}


def _cooccurrence(data: Labelled, groups: Sequence[str | None]) -> dict[str, Any]:
    keep = np.array([g is not None for g in groups])
    pred = data.pred[keep].astype(float)
    both = pred.T @ pred
    with np.errstate(divide="ignore", invalid="ignore"):
        cond = both / np.diag(both)[:, None]
    return {"passages": int(keep.sum()), "counts": both.astype(int).tolist(), "p_col_given_row": cond.tolist(),
            "note": "model decisions over all analysed passages: row category's passages that also have the column's"}


def _cut(text: str, n: int) -> str:
    return text if len(text) <= n else text[: max(n - 1, 0)] + "…" if n > 0 else ""


def _evidence(gdata: list[_GroupData], data: Labelled, titles: Mapping[str, str], texts: Mapping[str, str] | None,
              chars: int, top: int) -> list[dict[str, Any]]:
    out = []
    for g in gdata:
        for j, cat in enumerate(CATEGORIES):
            hits = [i for i in g.rows if data.pred[i, j]]
            hits.sort(key=lambda i: -data.scores[i, j])
            for i in hits[:top]:
                doc = data.docs[i]
                out.append({"group": g.name, "category": cat, "document": _cut(titles.get(doc, doc), chars),
                            "passage_id": data.passage_ids[i], "score": float(data.scores[i, j]),
                            "excerpt": _cut(texts.get(data.passage_ids[i], ""), chars) if texts else ""})
    return out


# ------------------------------------------------------------------ outputs

PREVALENCE_COLUMNS = ["group", "category", "n_docs", "n_passages", "raw", "raw_lo", "raw_hi",
                      "corrected", "corrected_lo", "corrected_hi"]
GOLD_COLUMNS = ["gold_anchored", "gold_lo", "gold_hi"]
EXTRA_COLUMNS = ["clipped", "corrected_unclipped", "tpr", "fpr", "n_labelled", "n_docs_labelled"]


def _write_outputs(out: Path, report: dict[str, Any], with_gold: bool) -> None:
    from policyclf.analysis_html import write_analysis_html
    from policyclf.jsonutil import clean_json, write_json

    cols = PREVALENCE_COLUMNS + (GOLD_COLUMNS + ["n_gold"] if with_gold else []) + EXTRA_COLUMNS
    rows = [{k: clean_json(r.get(k)) for k in cols} for r in report["prevalence"]]
    tmp = out / ".prevalence.csv.tmp"
    with tmp.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=cols)
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, out / "prevalence.csv")
    _write_xlsx(out / "prevalence.xlsx", cols, rows, report)
    write_json(out / "analysis.json", report)
    write_analysis_html(report, out / "analysis.html", with_gold)


def _write_xlsx(path: Path, cols: list[str], rows: list[dict[str, Any]], report: dict[str, Any]) -> None:
    from openpyxl import Workbook

    from policyclf.jsonutil import clean_json

    wb = Workbook()
    ws = wb.active
    ws.title = "prevalence"
    ws.append(cols)
    for r in rows:
        ws.append([r[c] for c in cols])
    pw = report["pairwise"].get("rows", [])
    if pw:
        ws2 = wb.create_sheet("pairwise")
        keys = list(pw[0].keys()) + (["p_holm"] if "p_holm" not in pw[0] else [])
        ws2.append(keys)
        for r in pw:
            ws2.append([clean_json(r.get(k)) for k in keys])
    tests = report["tests"]
    if "per_category" in tests:
        ws3 = wb.create_sheet("tests")
        keys = ["scope", "chi2", "dof", "p_permutation", "p_holm", "p_asymptotic", "cramers_v", "n"]
        ws3.append(keys)
        ws3.append(["all categories", *[clean_json(tests["overall"].get(k)) for k in keys[1:]]])
        for cat, r in tests["per_category"].items():
            ws3.append([cat, *[clean_json(r.get(k)) for k in keys[1:]]])
    ws4 = wb.create_sheet("error_rates")
    ws4.append(["category", "tpr", "fpr", "tp", "passages_pos", "fp", "passages_neg"])
    for cat, t in report["error_rates"]["totals"].items():
        ws4.append([cat, t["tpr"], t["fpr"], t["tp"], t["passages_pos"], t["fp"], t["passages_neg"]])
    tmp = path.with_name("." + path.name + ".tmp")
    wb.save(tmp)
    os.replace(tmp, path)



def held_out_validation(rates: ErrorRates, method: str = "acc", doc_type: str | None = None,
                        rates_doc_type: str | None = None) -> dict[str, Any]:
    """Gold, raw and corrected shares per held-out region × category, from a model's held-out statistics.

    Each region's raw share is the share its fold model (trained without the region) labelled; its
    corrected share uses error rates from the other regions' held-out documents only, so no region is
    corrected with rates measured on its own passages.

    Args:
        doc_type: score only documents of this type (the rates still come from all types unless
            ``rates_doc_type`` names one).
        rates_doc_type: estimate the error rates from documents of this type only.

    Returns:
        ``{"rows": [{region, category, n_passages, gold, raw, corrected, …}], "mae": {raw, corrected},
        "mean_signed_error": {raw, corrected}}`` (means over the cells with an estimate).
    """
    rows = []
    types = np.array(rates.doc_types)
    for region in sorted(set(rates.regions)):
        mine = (np.array(rates.regions) == region) & ((types == doc_type) if doc_type else True)
        if not mine.any():
            continue
        others = rates.without_region(region)
        if rates_doc_type:
            others = others.of_doc_type(rates_doc_type)
        tpr, fpr = others.rates(method)
        n = rates.n[mine].sum()
        gold = rates.stats["pos"][mine].sum(0) / n
        raw = (rates.stats["tp"][mine] + rates.stats["fp"][mine]).sum(0) / n
        q = raw if method == "acc" else (rates.stats["score_pos"][mine] + rates.stats["score_neg"][mine]).sum(0) / n
        unclipped, corrected = adjust(q, tpr, fpr)
        for j, cat in enumerate(CATEGORIES):
            rows.append({"region": region, "category": cat, "n_docs": int(mine.sum()), "n_passages": int(n),
                         "gold": float(gold[j]), "raw": float(raw[j]), "corrected": float(corrected[j]),
                         "clipped": bool(unclipped[j] < 0 or unclipped[j] > 1), "tpr_other_regions": float(tpr[j]),
                         "fpr_other_regions": float(fpr[j])})
    mae = {k: float(np.nanmean([abs(r[k] - r["gold"]) for r in rows])) for k in ("raw", "corrected")}
    bias = {k: float(np.nanmean([r[k] - r["gold"] for r in rows])) for k in ("raw", "corrected")}
    return {"rows": rows, "mae": mae, "mean_signed_error": bias, "method": method, "doc_type": doc_type, "rates_doc_type": rates_doc_type}
