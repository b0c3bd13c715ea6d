"""Choosing which passages to code next (active learning), and writing them for annotation tools.

Active learning here only decides *which* passages coders read; it never decides *how* they are
coded. The files coders work from carry passage ids, headings and text, never model scores: the
scores and the reason for every pick go to a separate picks log (``*.picks.jsonl``).

Strategies:
- ``uncertainty``: scores closest to the category thresholds, weighted towards categories with
  the lowest held-out F1;
- ``diversity``: greedy k-center on character TF-IDF vectors, away from what is already coded;
- ``random``: a seeded random sample (the control);
- ``mixed`` (default): shares of the three (50 % uncertainty, 30 % diversity, 20 % random).

Every strategy drops near-duplicates (cosine ≥ ``DUPLICATE_COSINE`` to a passage already in the
batch), so one batch never asks coders to read the same article twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.corpus import Passage, read_jsonl
from policyclf.errors import PolicyclfError
from policyclf.labels import CATEGORIES

STRATEGIES = ("mixed", "uncertainty", "diversity", "random")
FORMATS = ("jsonl", "label-studio", "doccano")
MIXED_SHARES = {"uncertainty": 0.5, "diversity": 0.3, "random": 0.2}
DUPLICATE_COSINE = 0.9


@dataclass
class Pick:
    """One chosen passage: why it was chosen and the model scores behind the choice."""

    passage: Passage
    strategy: str
    reason: str
    rank: int = 0
    scores: dict[str, float] = field(default_factory=dict)


def category_weights(per_category_f1: dict[str, float] | None) -> np.ndarray:
    """Weight per category for uncertainty sampling: 1 − held-out F1, normalised to mean 1.

    Without F1 figures every category weighs 1.
    """
    if not per_category_f1:
        return np.ones(len(CATEGORIES))
    w = np.array([max(1.0 - float(per_category_f1.get(c, 0.5)), 0.05) for c in CATEGORIES])
    return w / w.mean()


def heldout_f1_from_report(report_json: str | Path, backend: str) -> dict[str, float]:
    """Per-category leave-one-region-out F1 of ``backend`` from a report's ``report.json``.

    Raises:
        PolicyclfError: unreadable file or no such backend in it.
    """
    path = Path(report_json)
    try:
        rep = json.loads(path.read_text(encoding="utf-8"))
        per = rep["backends"][backend]["loro"]["per_category"]
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyclfError(f"{path}: cannot read a report ({exc})") from exc
    except KeyError:
        raise PolicyclfError(f"{path}: no leave-one-region-out figures for backend {backend!r}") from None
    return {c: float(per[c]["f1"]) for c in CATEGORIES if c in per}


def closeness(scores: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """How near each score is to its category threshold, on the logit scale: 1 at it, → 0 far away."""
    eps = 1e-6
    s = np.clip(scores, eps, 1 - eps)
    t = np.clip(np.asarray(thresholds, dtype=float), eps, 1 - eps)
    dist = np.abs(np.log(s / (1 - s)) - np.log(t / (1 - t)))
    return np.exp(-dist)


def uncertainty_scores(scores: np.ndarray, thresholds: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(value, category index) of the most useful near-threshold category of every passage."""
    w = closeness(scores, thresholds) * weights[None, :]
    best = w.argmax(axis=1)
    return w[np.arange(len(w)), best], best


def tfidf_vectors(texts: Sequence[str]):
    """L2-normalised character 1–2-gram TF-IDF rows (for diversity and duplicate checks)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char", ngram_range=(1, 2), sublinear_tf=True).fit_transform(texts)


class _Batch:
    """The passages chosen so far, with their vectors for the near-duplicate check."""

    def __init__(self, vectors) -> None:
        self.vectors = vectors
        self.chosen: list[int] = []

    def near_duplicate(self, i: int) -> bool:
        if not self.chosen:
            return False
        sims = self.vectors[self.chosen] @ self.vectors[i].T
        return bool(sims.max() >= DUPLICATE_COSINE)

    def add(self, i: int) -> None:
        self.chosen.append(i)


def suggest(
    pool: Sequence[Passage],
    n: int,
    *,
    strategy: str = "mixed",
    scores: np.ndarray | None = None,
    thresholds: np.ndarray | None = None,
    per_category_f1: dict[str, float] | None = None,
    coded_texts: Sequence[str] = (),
    seed: int = 0,
) -> list[Pick]:
    """Choose ``n`` passages of ``pool`` to code next.

    Args:
        pool: candidate passages (already without those that have a record or an open pick).
        strategy: one of :data:`STRATEGIES`.
        scores: (len(pool), 7) model probabilities; needed by ``uncertainty`` and ``mixed``.
        thresholds: the model's per-category thresholds.
        per_category_f1: held-out F1 per category, to weight the uncertainty towards weak ones.
        coded_texts: texts already coded; diversity keeps away from them.
        seed: seed of the random share and of ties.

    Raises:
        PolicyclfError: unknown strategy, ``n`` < 1, or a strategy that needs scores without them.
    """
    if strategy not in STRATEGIES:
        raise PolicyclfError(f"unknown strategy {strategy!r}; expected one of {', '.join(STRATEGIES)}")
    if n < 1:
        raise PolicyclfError(f"-n must be at least 1 (got {n})")
    if strategy in ("mixed", "uncertainty") and (scores is None or thresholds is None):
        raise PolicyclfError(f"strategy {strategy!r} needs a model's scores (pass --model)")
    pool = list(pool)
    n = min(n, len(pool))
    if n == 0:
        return []
    rng = np.random.default_rng(seed)
    texts = [p.text for p in pool]
    vectors = tfidf_vectors([*texts, *coded_texts])
    pool_vec, coded_vec = vectors[: len(pool)], vectors[len(pool):]
    batch = _Batch(pool_vec)
    picks: list[Pick] = []
    shares = MIXED_SHARES if strategy == "mixed" else {strategy: 1.0}
    quota = _quotas(shares, n)

    def take(i: int, strat: str, reason: str) -> None:
        batch.add(i)
        picks.append(Pick(pool[i], strat, reason, len(picks) + 1,
                          {} if scores is None else {c: round(float(s), 4) for c, s in zip(CATEGORIES, scores[i])}))

    if quota.get("uncertainty"):
        weights = category_weights(per_category_f1)
        value, cat = uncertainty_scores(scores, thresholds, weights)
        order = np.lexsort((rng.random(len(pool)), -value))
        got = 0
        for i in order:
            if got == quota["uncertainty"]:
                break
            if i in batch.chosen or batch.near_duplicate(i):
                continue
            c = int(cat[i])
            take(int(i), "uncertainty",
                 f"near the {CATEGORIES[c]} threshold (score {scores[i, c]:.3f}, threshold {thresholds[c]:.3f}; "
                 f"category weight {weights[c]:.2f})")
            got += 1
    if quota.get("diversity"):
        for i, dist in _k_center(pool_vec, coded_vec, batch, quota["diversity"]):
            take(i, "diversity", f"far from coded and chosen passages (cosine distance {dist:.3f})")
    if quota.get("random"):
        got = 0
        for i in rng.permutation(len(pool)):
            if got == quota["random"]:
                break
            if i in batch.chosen or batch.near_duplicate(i):
                continue
            take(int(i), "random", f"random sample (seed {seed})")
            got += 1
    return picks


def _quotas(shares: dict[str, float], n: int) -> dict[str, int]:
    """Integer counts per strategy that add up to ``n`` (largest remainders)."""
    raw = {k: v * n for k, v in shares.items()}
    out = {k: math.floor(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: raw[k] - out[k], reverse=True)[: n - sum(out.values())]:
        out[k] += 1
    return out


def _k_center(pool_vec, coded_vec, batch: _Batch, k: int) -> Iterable[tuple[int, float]]:
    """Greedy k-center: repeatedly the passage farthest (cosine) from everything coded or chosen."""
    n = pool_vec.shape[0]
    max_sim = np.zeros(n)
    if coded_vec.shape[0]:
        for start in range(0, coded_vec.shape[0], 2000):
            block = (pool_vec @ coded_vec[start:start + 2000].T).max(axis=1).toarray().ravel()
            max_sim = np.maximum(max_sim, block)
    for i in batch.chosen:
        max_sim = np.maximum(max_sim, (pool_vec @ pool_vec[i].T).toarray().ravel())
    taken = np.zeros(n, dtype=bool)
    taken[batch.chosen] = True
    for _ in range(k):
        candidates = np.where(taken, np.inf, max_sim)
        i = int(np.argmin(candidates))
        if not np.isfinite(candidates[i]):
            return
        taken[i] = True
        yield i, float(1.0 - max_sim[i])
        max_sim = np.maximum(max_sim, (pool_vec @ pool_vec[i].T).toarray().ravel())


# ---------------------------------------------------------------- writing the files
def task_record(p: Passage, title: str = "") -> dict[str, Any]:
    """What a coder sees of one passage: id, document, heading and text — never scores."""
    return {"passage_id": p.passage_id, "doc_id": p.doc_id, "title": title, "region": p.region,
            "doc_type": p.doc_type, "heading": p.heading, "text": p.text}


def write_tasks(path: str | Path, picks: Sequence[Pick], fmt: str, *, titles: dict[str, str] | None = None,
                with_predictions: bool = False, model_name: str = "", thresholds: np.ndarray | None = None) -> None:
    """Write the coders' file in ``fmt`` (jsonl, label-studio JSON or doccano JSONL).

    Pre-annotations (``with_predictions``) exist only for Label Studio and only on request:
    never for this project's gold data.
    """
    if fmt not in FORMATS:
        raise PolicyclfError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if with_predictions and fmt != "label-studio":
        raise PolicyclfError("--with-predictions is only for --format label-studio")
    titles = titles or {}
    records = [task_record(p.passage, titles.get(p.passage.doc_id, "")) for p in picks]
    path = Path(path)
    if fmt == "label-studio":
        tasks = []
        for pick, rec in zip(picks, records):
            task: dict[str, Any] = {"data": rec}
            if with_predictions and pick.scores and thresholds is not None:
                chosen = [c for c, t in zip(CATEGORIES, thresholds) if pick.scores[c] >= t]
                task["predictions"] = [{"model_version": model_name, "result": [
                    {"from_name": "categories", "to_name": "text", "type": "choices",
                     "value": {"choices": chosen}}]}]
            tasks.append(task)
        path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        return
    with path.open("w", encoding="utf-8") as f:
        for rec in records:
            if fmt == "doccano":
                rec = {"text": rec["text"], "label": [], **{k: v for k, v in rec.items() if k != "text"}}
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")


def write_picks_log(path: str | Path, picks: Sequence[Pick], *, model: str, model_fingerprint: str,
                    strategy: str, seed: int) -> None:
    """The picks log: for every pick its rank, strategy, reason, scores and model (no text)."""
    with Path(path).open("w", encoding="utf-8") as f:
        for p in picks:
            f.write(json.dumps({"passage_id": p.passage.passage_id, "rank": p.rank, "strategy": p.strategy,
                                "reason": p.reason, "scores": p.scores, "model": model,
                                "model_fingerprint": model_fingerprint, "run_strategy": strategy,
                                "seed": seed}, ensure_ascii=False) + "\n")


def picked_ids(paths: Iterable[str | Path]) -> set[str]:
    """Passage ids in earlier picks logs (open rounds not yet coded)."""
    out: set[str] = set()
    for path in paths:
        for _, rec in read_jsonl(Path(path)):
            if "passage_id" in rec:
                out.add(rec["passage_id"])
    return out


@dataclass
class SuggestResult:
    output: Path
    picks_log: Path
    picks: list[Pick]
    candidates: int


def suggest_to_files(
    n: int,
    output: str | Path,
    *,
    pool: str = "six_regions_pool",
    doc_type: str | None = None,
    model_dir: str | Path | None = None,
    strategy: str = "mixed",
    fmt: str = "jsonl",
    seed: int = 0,
    exclude_picks: Sequence[str | Path] = (),
    heldout_report: str | Path | None = None,
    with_predictions: bool = False,
    corpus: str | None = None,
    root: str | Path | None = None,
    force: bool = False,
    progress: bool = True,
) -> SuggestResult:
    """``policyclf data suggest``: choose passages of ``pool`` (of ``doc_type``, if given) that have no record yet.

    Writes ``output`` (what coders read: no scores unless ``with_predictions``) and
    ``<output>.picks.jsonl`` (why each passage was picked, its scores, the model).

    Raises:
        PolicyclfError: an output that exists without ``force``, an empty or unknown pool,
            or a strategy that needs a model that cannot be loaded.
    """
    from policyclf.corpus import annotations_dir, load_documents, load_passages, read_annotations

    output = Path(output)
    log_path = output.with_name(output.name + ".picks.jsonl")
    for path in (output, log_path):
        if path.exists() and not force:
            raise PolicyclfError(f"{path} already exists; pass --force to overwrite it")
    passages = load_passages(corpus)
    adir = annotations_dir(root)
    coded: set[str] = set()
    for f in sorted(adir.glob("*.jsonl")):
        coded |= {a.passage_id for a in read_annotations(f, passages, final=not f.name.startswith("double_"))}
    excluded = coded | picked_ids(exclude_picks)
    pools = sorted({p.pool for p in passages.values()})
    if pool not in pools:
        raise PolicyclfError(f"unknown pool {pool!r}; the corpus has {', '.join(pools)}")
    doc_types = sorted({p.doc_type for p in passages.values() if p.pool == pool})
    if doc_type is not None and doc_type not in doc_types:
        raise PolicyclfError(f"pool {pool!r} has no document type {doc_type!r}; it has {', '.join(doc_types)}")
    candidates = [p for p in passages.values() if p.pool == pool and p.passage_id not in excluded
                  and (doc_type is None or p.doc_type == doc_type)]
    if not candidates:
        raise PolicyclfError(f"pool {pool!r}{f' ({doc_type})' if doc_type else ''} has no passage left "
                             "without a record or an open pick")
    scores = thresholds = None
    model_name, fingerprint, f1 = "", "", None
    if strategy in ("mixed", "uncertainty") or model_dir is not None:
        from policyclf.models.base import load_model, read_meta
        from policyclf.predict import default_model_dir

        model_dir = Path(model_dir) if model_dir else default_model_dir()
        meta = read_meta(model_dir)
        model = load_model(model_dir)
        from policyclf.scoring import score_texts

        scores = score_texts(model, [p.text for p in candidates], progress=progress,
                             headings=[p.heading for p in candidates])
        thresholds = model.thresholds_
        model_name = str(model_dir)
        fingerprint = meta.get("training_data", {}).get("fingerprint", "")
        if heldout_report:
            f1 = heldout_f1_from_report(heldout_report, meta["backend"])
    coded_texts = [passages[pid].text for pid in coded if passages[pid].pool in ("six_regions", pool)]
    picks = suggest(candidates, n, strategy=strategy, scores=scores, thresholds=thresholds,
                    per_category_f1=f1, coded_texts=coded_texts, seed=seed)
    titles = {d: rec.get("title", "") for d, rec in load_documents(corpus).items()}
    output.parent.mkdir(parents=True, exist_ok=True)
    write_tasks(output, picks, fmt, titles=titles, with_predictions=with_predictions,
                model_name=model_name, thresholds=thresholds)
    write_picks_log(log_path, picks, model=model_name, model_fingerprint=fingerprint, strategy=strategy, seed=seed)
    return SuggestResult(output, log_path, picks, len(candidates))
