"""analyze: error-corrected and gold-anchored prevalence, group tests, evidence, bad input (synthetic data)."""

from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from policyclf.analysis import AnalysisWarning, adjust, analyze, gold_anchored, permutation_test, _chi2_stats
from policyclf.corpus import REGIONS
from policyclf.error_rates import ERROR_RATES_FILE, ErrorRates, doc_of, load_error_rates, save_error_rates
from policyclf.errors import DataError, ModelError, PolicyclfError
from policyclf.labels import CATEGORIES

ROOT = Path(__file__).resolve().parents[1]
TPR = np.array([0.6, 0.7, 0.5, 0.75, 0.7, 0.6, 0.65])
FPR = np.array([0.05, 0.10, 0.02, 0.04, 0.05, 0.03, 0.06])


def simulate(rng: np.random.Generator, prevalence: np.ndarray, n_docs: int, per_doc: int
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gold labels, decisions with the known TPR/FPR and scores, for n_docs × per_doc passages."""
    y = rng.random((n_docs * per_doc, 7)) < prevalence
    pred = np.where(y, rng.random(y.shape) < TPR, rng.random(y.shape) < FPR)
    scores = np.where(pred, 0.5 + 0.5 * rng.random(y.shape), 0.5 * rng.random(y.shape))
    return y, pred, scores


def held_out_rates(rng: np.random.Generator, n_docs: int = 200, per_doc: int = 40) -> ErrorRates:
    """Error rates from a simulated held-out set with the known TPR/FPR."""
    y, pred, s = simulate(rng, np.full(7, 0.3), n_docs, per_doc)
    sl = [slice(i * per_doc, (i + 1) * per_doc) for i in range(n_docs)]
    yf, pf = y.astype(float), pred.astype(float)
    stats = {"pos": np.array([yf[i].sum(0) for i in sl]), "tp": np.array([(yf * pf)[i].sum(0) for i in sl]),
             "fp": np.array([((1 - yf) * pf)[i].sum(0) for i in sl]),
             "score_pos": np.array([(yf * s)[i].sum(0) for i in sl]),
             "score_neg": np.array([((1 - yf) * s)[i].sum(0) for i in sl]),
             "doc_gold": np.array([yf[i].max(0) for i in sl]), "doc_pred": np.array([pf[i].max(0) for i in sl])}
    return ErrorRates([f"held-{i}" for i in range(n_docs)], ["r1" if i % 2 else "r2" for i in range(n_docs)],
                      ["regulation" if i % 3 else "work_report" for i in range(n_docs)],
                      np.full(n_docs, float(per_doc)), stats, {"note": "simulated"})


def write_rows(path: Path, pids: list[str], pred: np.ndarray, scores: np.ndarray, docs: list[str] | None = None,
               extra: list[dict] | None = None) -> None:
    with path.open("w", encoding="utf-8") as f:
        for i, pid in enumerate(pids):
            row = {"passage_id": pid, **({"doc": docs[i]} if docs else {}), "seq": i + 1,
                   "labels": [c for c, p in zip(CATEGORIES, pred[i]) if p],
                   "scores": {c: round(float(s), 6) for c, s in zip(CATEGORIES, scores[i])}, **(extra[i] if extra else {})}
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("model")
    save_error_rates(held_out_rates(np.random.default_rng(1)), path)
    return path


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Two groups with known prevalences: a predict .jsonl, a metadata CSV and the truth."""
    rng = np.random.default_rng(7)
    truth = {"north": np.array([0.30, 0.05, 0.10, 0.40, 0.20, 0.15, 0.25]),
             "south": np.array([0.10, 0.25, 0.02, 0.20, 0.35, 0.05, 0.10])}
    path = tmp_path_factory.mktemp("syn")
    pids, preds, scores, gold, meta = [], [], [], {}, []
    for g, prev in truth.items():
        y, pred, s = simulate(rng, prev, 60, 50)
        for i in range(len(y)):
            doc = f"{g}-reg-{i // 50:08x}"
            pid = f"{doc}-{i % 50 + 1:03d}"
            pids.append(pid)
            gold[pid] = y[i]
            if i % 50 == 0:
                meta.append({"doc": doc, "region": g, "year": str(2025 + (i // 50) % 2), "title": f"{g} 文件 {i // 50}"})
        preds.append(pred)
        scores.append(s)
    write_rows(path / "pred.jsonl", pids, np.vstack(preds), np.vstack(scores))
    with (path / "meta.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["doc", "region", "year", "title"])
        w.writeheader()
        w.writerows(meta)
    return {"dir": path, "truth": truth, "gold": gold, "pids": pids}


def run(syn: dict, model_dir: Path, tmp_path: Path, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)
        return analyze(syn["dir"] / "pred.jsonl", tmp_path / "out", model_dir=model_dir, n_boot=200, n_perm=200,
                       **{"group_by": "region", "metadata": syn["dir"] / "meta.csv", **kw})


# ------------------------------------------------------------------ the correction

def test_adjust_is_the_acc_formula_and_clips():
    unclipped, clipped = adjust(np.array([0.30, 0.01, 0.99]), np.array([0.8, 0.8, 0.8]), np.array([0.1, 0.1, 0.1]))
    assert unclipped == pytest.approx([(0.3 - 0.1) / 0.7, (0.01 - 0.1) / 0.7, (0.99 - 0.1) / 0.7])
    assert clipped == pytest.approx([(0.3 - 0.1) / 0.7, 0.0, 1.0])
    assert np.isnan(adjust(np.array([0.3]), np.array([0.1]), np.array([0.2]))[1]).all()  # TPR ≤ FPR: undefined


def test_corrected_recovers_the_true_prevalence_and_raw_does_not(synthetic, model_dir, tmp_path):
    res = run(synthetic, model_dir, tmp_path)
    raw_err, corr_err, covered, biased = [], [], 0, 0
    for r in res.prevalence:
        j = CATEGORIES.index(r["category"])
        true = synthetic["truth"][r["group"]][j]
        raw_err.append(abs(r["raw"] - true))
        corr_err.append(abs(r["corrected"] - true))
        covered += r["corrected_lo"] <= true <= r["corrected_hi"]
        assert r["raw_lo"] <= r["raw"] <= r["raw_hi"]
        if abs(TPR[j] * true + FPR[j] * (1 - true) - true) > 0.04:  # classify and count is biased here
            biased += 1
            assert not r["raw_lo"] <= true <= r["raw_hi"]
    assert biased >= 5
    assert np.mean(corr_err) < 0.015 and max(corr_err) < 0.05
    assert np.mean(raw_err) > 2 * np.mean(corr_err)
    assert covered >= 12  # of 14 intervals


def test_pacc_recovers_too(synthetic, model_dir, tmp_path):
    res = run(synthetic, model_dir, tmp_path, method="pacc")
    err = [abs(r["corrected"] - synthetic["truth"][r["group"]][CATEGORIES.index(r["category"])]) for r in res.prevalence]
    assert np.mean(err) < 0.02


def test_corrected_interval_carries_the_error_rate_uncertainty(synthetic, tmp_path):
    """Fewer held-out documents → wider corrected intervals, the same raw intervals."""
    widths = {}
    for n_docs in (200, 10):
        mdir = tmp_path / f"m{n_docs}"
        mdir.mkdir()
        save_error_rates(held_out_rates(np.random.default_rng(3), n_docs=n_docs), mdir)
        res = run(synthetic, mdir, tmp_path / f"o{n_docs}")
        widths[n_docs] = (np.mean([r["corrected_hi"] - r["corrected_lo"] for r in res.prevalence]),
                          np.mean([r["raw_hi"] - r["raw_lo"] for r in res.prevalence]))
    assert widths[10][0] > 1.3 * widths[200][0]
    assert widths[10][1] == pytest.approx(widths[200][1])


def test_clipping_is_reported(tmp_path, model_dir):
    rng = np.random.default_rng(0)
    n = 400
    pred = np.zeros((n, 7), dtype=bool)
    pred[:4, 2] = True  # raw 1 % social organizations, below its 2 % false-positive rate
    write_rows(tmp_path / "p.jsonl", [f"d{i // 20}:{i % 20 + 1:03d}" for i in range(n)], pred, rng.random((n, 7)) * 0.4)
    with pytest.warns(AnalysisWarning, match="clipped"):
        res = analyze(tmp_path / "p.jsonl", tmp_path / "out", model_dir=model_dir, n_boot=50, n_perm=50)
    row = next(r for r in res.prevalence if r["category"] == "social_organizations")
    assert row["clipped"] and row["corrected"] == 0.0 and row["corrected_unclipped"] < 0


# ------------------------------------------------------------------ gold-anchored (PPI)

def test_ppi_interval_covers_the_truth_in_at_least_90_percent_of_draws():
    rng = np.random.default_rng(11)
    truth, hits, draws = 0.2, 0, 300
    for _ in range(draws):
        y = rng.random(3000) < truth
        pred = np.where(y, rng.random(3000) < 0.7, rng.random(3000) < 0.08)  # biased: raw ≈ 0.204 … but noisy
        coded = rng.choice(3000, 150, replace=False)
        rest = np.setdiff1d(np.arange(3000), coded)
        _, lo, hi = gold_anchored(y[coded], pred[coded], pred[rest])
        hits += lo <= truth <= hi
    assert hits / draws >= 0.90


def test_gold_anchored_leaves_the_warning_filters_alone():
    """ppi_py's import silences every warning of the process; analyze's warnings must still be shown."""
    before = list(warnings.filters)
    gold_anchored(np.array([0, 1, 1]), np.array([0, 1, 0]), np.array([1, 0, 0, 1]))
    assert warnings.filters == before
    with pytest.warns(UserWarning, match="still shown"):
        warnings.warn("still shown", UserWarning)


def test_ppi_beats_the_raw_share_when_the_model_is_biased():
    rng = np.random.default_rng(5)
    y = rng.random(5000) < 0.3
    pred = np.where(y, rng.random(5000) < 0.5, rng.random(5000) < 0.02)  # raw ≈ 0.164
    coded = rng.choice(5000, 400, replace=False)
    est, lo, hi = gold_anchored(y[coded], pred[coded], pred[np.setdiff1d(np.arange(5000), coded)])
    assert abs(est - 0.3) < 0.05 and lo < 0.3 < hi
    assert pred.mean() < 0.2


def test_gold_file_gives_gold_anchored_columns(synthetic, model_dir, tmp_path):
    rng = np.random.default_rng(2)
    sample = rng.choice(synthetic["pids"], 800, replace=False)
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"passage_id": p, "labels": [c for c, v in zip(CATEGORIES, synthetic["gold"][p]) if v]})
                            + "\n" for p in sample), encoding="utf-8")
    res = run(synthetic, model_dir, tmp_path, gold=gold)
    err = []
    for r in res.prevalence:
        true = synthetic["truth"][r["group"]][CATEGORIES.index(r["category"])]
        assert r["gold_lo"] <= r["gold_anchored"] <= r["gold_hi"] and r["n_gold"] > 300
        err.append(abs(r["gold_anchored"] - true))
    assert np.mean(err) < 0.03
    header = (tmp_path / "out" / "prevalence.csv").read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert header[:13] == ["group", "category", "n_docs", "n_passages", "raw", "raw_lo", "raw_hi", "corrected",
                           "corrected_lo", "corrected_hi", "gold_anchored", "gold_lo", "gold_hi"]


def test_gold_for_some_groups_only(synthetic, model_dir, tmp_path):
    """Coded passages in one group only: that group is gold-anchored, the other gets empty gold columns and a
    warning that names it (passage and document unit), and every output is still written."""
    docs = sorted({p.rsplit("-", 1)[0] for p in synthetic["pids"] if p.startswith("north-")})
    coded_docs = set(np.random.default_rng(4).choice(docs, 12, replace=False))  # whole documents: both units
    sample = [p for p in synthetic["pids"] if p.rsplit("-", 1)[0] in coded_docs]
    gold = tmp_path / "gold.jsonl"
    gold.write_text("".join(json.dumps({"passage_id": p, "labels": [c for c, v in zip(CATEGORIES, synthetic["gold"][p]) if v]})
                            + "\n" for p in sample), encoding="utf-8")
    for unit in ("passage", "document"):
        with pytest.warns(AnalysisWarning, match=r"group 'south': 0 coded") as caught:
            res = analyze(synthetic["dir"] / "pred.jsonl", tmp_path / unit, model_dir=model_dir, n_boot=50, n_perm=50,
                          group_by="region", metadata=synthetic["dir"] / "meta.csv", gold=gold, unit=unit)
        assert not any("north" in str(w.message) and "no gold-anchored" in str(w.message) for w in caught)
        for r in res.prevalence:
            if r["group"] == "south":
                assert r["gold_anchored"] is None and r["gold_lo"] is None and r["gold_hi"] is None and r["n_gold"] == 0
            else:
                assert r["n_gold"] == (600 if unit == "passage" else 12) and r["gold_anchored"] is not None
                if unit == "passage":  # (documents of 50 passages all carry every category here: degenerate)
                    assert r["gold_lo"] <= r["gold_anchored"] <= r["gold_hi"]
        rows = list(csv.DictReader((tmp_path / unit / "prevalence.csv").open(encoding="utf-8-sig")))
        assert {r["gold_anchored"] for r in rows if r["group"] == "south"} == {""}
        assert unit == "document" or all(r["gold_anchored"] != "" for r in rows if r["group"] == "north")
        assert "gold-anchored" in (tmp_path / unit / "analysis.html").read_text(encoding="utf-8")


def test_gold_with_unknown_ids_or_labels_is_refused(synthetic, model_dir, tmp_path):
    bad = tmp_path / "g.jsonl"
    bad.write_text(json.dumps({"passage_id": "nowhere-001", "labels": []}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="not in the input: 'nowhere-001'"):
        run(synthetic, model_dir, tmp_path, gold=bad)
    bad.write_text(json.dumps({"passage_id": synthetic["pids"][0], "labels": ["talent"]}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 1: unknown label 'talent'"):
        run(synthetic, model_dir, tmp_path, gold=bad)


# ------------------------------------------------------------------ group tests

def test_chi2_stats_match_scipy():
    from scipy.stats import chi2_contingency

    t = np.array([[10, 5, 0], [3, 9, 4], [0, 0, 0]], dtype=float)
    assert _chi2_stats(t) == pytest.approx(chi2_contingency(t[:2], correction=False)[0])


def test_permutation_test_separates_different_and_equal_mixes():
    rng = np.random.default_rng(0)
    groups = np.repeat(["a", "b"], 30)
    same = np.tile(rng.poisson(5, (30, 3)).astype(float), (2, 1))  # group b's documents are group a's
    same[0, 0] += 1
    differ = same.copy()
    differ[:30, 0] += 6
    r_diff = permutation_test(groups, differ, n_perm=300, seed=1)
    r_same = permutation_test(groups, same, n_perm=300, seed=1)
    assert r_diff["p_permutation"] < 0.01 < 0.05 < r_same["p_permutation"]
    assert 0 < r_same["cramers_v"] < r_diff["cramers_v"] <= 1


def test_groups_that_differ_are_found_and_pairwise_is_corrected(synthetic, model_dir, tmp_path):
    res = run(synthetic, model_dir, tmp_path)
    t = res.report["tests"]
    assert t["overall"]["p_permutation"] < 0.01 and t["overall"]["cramers_v"] > 0.1
    pw = res.report["pairwise"]
    assert pw["comparisons"] == 7 and pw["z"] > 2.6  # Bonferroni over 7 comparisons
    big = next(r for r in pw["rows"] if r["category"] == "talent_teams")  # 0.15 against 0.05
    assert big["lo"] > 0 and big["p_holm"] < 0.05
    assert all(r["p_holm"] >= r["p"] for r in pw["rows"])


# ------------------------------------------------------------------ input, groups, outputs

def test_outputs_and_evidence_excerpts(synthetic, model_dir, tmp_path):
    texts = tmp_path / "texts.jsonl"
    texts.write_text("".join(json.dumps({"passage_id": p, "text": "设立科技专项资金支持企业研发" * 3}, ensure_ascii=False) + "\n"
                             for p in synthetic["pids"]), encoding="utf-8")
    res = run(synthetic, model_dir, tmp_path, texts=texts, excerpt_chars=12, evidence=2)
    out = tmp_path / "out"
    for name in ("prevalence.csv", "prevalence.xlsx", "analysis.json", "analysis.html"):
        assert (out / name).stat().st_size > 0
    ev = res.report["evidence"]
    assert len(ev) == 2 * 7 * 2
    assert all(len(e["excerpt"]) <= 12 and e["excerpt"].endswith("…") for e in ev)
    assert ev[0]["document"].startswith(ev[0]["group"]) and ev[0]["score"] >= ev[1]["score"]
    page = (out / "analysis.html").read_text(encoding="utf-8")
    assert "data:image/png;base64" in page and "Cramér" in page and ev[0]["passage_id"] in page
    with pytest.raises(PolicyclfError, match="--force"):
        run(synthetic, model_dir, tmp_path)


def test_document_unit(synthetic, model_dir, tmp_path):
    res = run(synthetic, model_dir, tmp_path, unit="document")
    row = next(r for r in res.prevalence if r["group"] == "north" and r["category"] == "service_mechanisms")
    assert row["raw"] == 1.0  # 50 passages a document: every document has one
    assert res.report["settings"]["unit"] == "document"


def test_bad_metadata_errors(synthetic, model_dir, tmp_path):
    meta = tmp_path / "m.csv"
    meta.write_text("id,region\nx,north\n", encoding="utf-8")
    with pytest.raises(DataError, match="needs a 'doc' or 'passage_id' column"):
        run(synthetic, model_dir, tmp_path, metadata=meta)
    meta.write_text("doc,region\nnothing-here,north\n", encoding="utf-8")
    with pytest.raises(DataError, match="none of its 1 doc ids matches"):
        run(synthetic, model_dir, tmp_path, metadata=meta)
    with pytest.raises(DataError, match="--group-by 'province': not a column .* doc, region, year, title"):
        run(synthetic, model_dir, tmp_path, group_by="province")
    with pytest.raises(DataError, match="not a field of the input rows"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AnalysisWarning)
            analyze(synthetic["dir"] / "pred.jsonl", tmp_path / "o", group_by="province", model_dir=model_dir)
    meta.write_text("doc,region\nnorth-reg-00000000,north\nnorth-reg-00000000,south\n", encoding="utf-8")
    with pytest.raises(DataError, match="line 3: doc 'north-reg-00000000' appears twice"):
        run(synthetic, model_dir, tmp_path, metadata=meta)


def test_unmatched_and_blank_metadata_are_named(synthetic, model_dir, tmp_path):
    rows = list(csv.DictReader((synthetic["dir"] / "meta.csv").open(encoding="utf-8")))
    rows[0]["region"] = ""
    rows = rows[:-1] + [{"doc": "ghost-doc", "region": "east", "year": "2025", "title": ""}]
    meta = tmp_path / "m.csv"
    with meta.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with pytest.warns(AnalysisWarning) as rec:
        res = analyze(synthetic["dir"] / "pred.jsonl", tmp_path / "out", metadata=meta, group_by="region",
                      model_dir=model_dir, n_boot=20, n_perm=20)
    text = " | ".join(str(w.message) for w in rec)
    assert "'ghost-doc'" in text and "no row in" in text and "'south-reg-0000003b'" in text
    assert "empty 'region'" in text and "'north-reg-00000000'" in text
    assert [g["group"] for g in res.report["groups"]] == ["north", "south"]
    assert res.report["groups"][0]["n_docs"] == 59


def test_label_folder_grouped_by_folder_uses_the_labelling_model(tmp_path, model_dir):
    rng = np.random.default_rng(4)
    folder = tmp_path / "labelled"
    (folder / ".work").mkdir(parents=True)
    docs = [f"{g}/report{i}.txt" for g in ("beijing", "shanghai") for i in range(3)] + ["loose.txt"]
    pids, dlist = [], []
    for d in docs:
        for s in range(1, 11):
            pids.append(f"{d}:{s:03d}")
            dlist.append(d)
    _, pred, scores = simulate(rng, np.full(7, 0.2), len(docs), 10)
    write_rows(folder / "passages.jsonl", pids, pred, scores, docs=dlist)
    (folder / ".work" / "run.json").write_text(json.dumps({"settings": {"model": str(model_dir)}}), encoding="utf-8")
    with pytest.warns(AnalysisWarning, match="top level .*'loose.txt'"):
        res = analyze(folder, tmp_path / "out", group_by="folder", n_boot=20, n_perm=20)
    assert [g["group"] for g in res.report["groups"]] == ["(top level)", "beijing", "shanghai"]
    assert res.report["settings"]["model"] == str(model_dir)


def test_group_from_a_row_field_and_bad_rows(tmp_path, model_dir):
    rng = np.random.default_rng(0)
    _, pred, scores = simulate(rng, np.full(7, 0.2), 4, 5)
    pids = [f"d{i // 5}-{i % 5 + 1:03d}" for i in range(20)]
    write_rows(tmp_path / "p.jsonl", pids, pred, scores, extra=[{"region": "a" if i < 10 else "b"} for i in range(20)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)
        res = analyze(tmp_path / "p.jsonl", tmp_path / "out", group_by="region", model_dir=model_dir, n_boot=20, n_perm=20)
    assert [(g["group"], g["n_docs"]) for g in res.report["groups"]] == [("a", 2), ("b", 2)]
    (tmp_path / "bad.jsonl").write_text('{"passage_id": "x-001", "labels": ["talent"], "scores": {}}\n', encoding="utf-8")
    with pytest.raises(DataError, match="bad.jsonl line 1: unknown category 'talent'"):
        analyze(tmp_path / "bad.jsonl", tmp_path / "o2", model_dir=model_dir)
    with pytest.raises(DataError, match="no such file"):
        analyze(tmp_path / "missing.jsonl", tmp_path / "o3", model_dir=model_dir)


def test_model_without_error_rates_is_refused(synthetic, tmp_path):
    with pytest.raises(ModelError, match="no error_rates.json .*scripts/model_error_rates.py"):
        run(synthetic, tmp_path, tmp_path)


# ------------------------------------------------------------------ error rates

def test_error_rates_round_trip_and_subsets(tmp_path):
    rates = held_out_rates(np.random.default_rng(0), n_docs=30, per_doc=20)
    save_error_rates(rates, tmp_path)
    back = load_error_rates(tmp_path)
    tpr, fpr = back.rates()
    assert tpr == pytest.approx(TPR, abs=0.08) and fpr == pytest.approx(FPR, abs=0.03)
    assert len(back.without_region("r1")) == 15 and set(back.without_region("r1").regions) == {"r2"}
    assert set(back.of_doc_type("work_report").doc_types) == {"work_report"}
    with pytest.raises(DataError, match="no held-out documents of type 'law'"):
        back.of_doc_type("law")
    weights = np.ones((3, 30))
    assert back.rates(weights=weights)[0] == pytest.approx(np.tile(tpr, (3, 1)))
    bad = json.loads((tmp_path / ERROR_RATES_FILE).read_text())
    bad["categories"] = bad["categories"][::-1]
    (tmp_path / ERROR_RATES_FILE).write_text(json.dumps(bad))
    with pytest.raises(ModelError, match="categories"):
        load_error_rates(tmp_path)


def test_doc_of():
    assert doc_of("beijing-reg-0a1b2c3d-012") == "beijing-reg-0a1b2c3d"
    assert doc_of("dir/a-b.txt:003") == "dir/a-b.txt"
    assert doc_of("plain") == "plain"


@pytest.mark.parametrize("model", ["policyclf-student-tfidf", "policyclf-ensemble", "policyclf-distilled",
                                   "policyclf-bert", "policyclf-tfidf"])
def test_shipped_models_store_error_rates_from_their_loro_predictions(model):
    """The stored totals are what the six LORO prediction files and the gold labels give."""
    rates = load_error_rates(ROOT / "models" / model)
    files = [ROOT / f for f in rates.info["predictions"]]
    assert sorted(f.stem for f in files) == sorted(f"loro-{r}" for r in REGIONS)
    assert all(f.is_file() for f in files)
    tp, n = np.zeros(7), 0
    for f in files:
        for line in f.open(encoding="utf-8"):
            r = json.loads(line)
            tp += np.array(r["scores"]) >= np.array(r["thresholds"])
            n += 1
    assert (len(rates), rates.n.sum(), n) == (57, 3159, 3159)  # documents, passages
    assert tp.sum() == rates.stats["tp"].sum() + rates.stats["fp"].sum()


# ------------------------------------------------------------------ the command

def test_cli_analyze_predict_jsonl_with_metadata(synthetic, model_dir, tmp_path):
    from typer.testing import CliRunner

    from policyclf.cli import app

    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["analyze", str(synthetic["dir"] / "pred.jsonl"), "-o", str(out), "--metadata",
                                   str(synthetic["dir"] / "meta.csv"), "--group-by", "year", "--model", str(model_dir),
                                   "--n-boot", "50", "--n-perm", "50"])
    assert res.exit_code == 0, res.output
    assert "2 group(s), 120 documents, 6000 passages" in res.output
    rows = list(csv.DictReader((out / "prevalence.csv").open(encoding="utf-8-sig")))
    assert [r["group"] for r in rows[::7]] == ["2025", "2026"] and len(rows) == 14
    report = json.loads((out / "analysis.json").read_text(encoding="utf-8"))
    assert report["settings"]["group_by"] == "year" and report["tests"]["overall"]["cramers_v"] is not None


def test_cli_bad_metadata_is_one_line_and_exit_1(synthetic, model_dir, tmp_path):
    from typer.testing import CliRunner

    from policyclf.cli import app

    res = CliRunner().invoke(app, ["analyze", str(synthetic["dir"] / "pred.jsonl"), "-o", str(tmp_path / "o"),
                                   "--metadata", str(synthetic["dir"] / "meta.csv"), "--group-by", "province",
                                   "--model", str(model_dir)])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == ["error: --group-by 'province': not a column of "
                                               f"{synthetic['dir'] / 'meta.csv'}; it has doc, region, year, title"]
    res = CliRunner().invoke(app, ["analyze", str(synthetic["dir"] / "pred.jsonl"), "-o", str(tmp_path / "o"),
                                   "--unit", "sentence", "--model", str(model_dir)])
    assert res.exit_code == 1 and "--unit 'sentence'" in res.output


def test_one_document_group_gets_no_pairwise_test(tmp_path, model_dir):
    rng = np.random.default_rng(9)
    _, pred, scores = simulate(rng, np.full(7, 0.2), 5, 20)
    pids = [f"d{i // 20}-{i % 20 + 1:03d}" for i in range(100)]
    write_rows(tmp_path / "p.jsonl", pids, pred, scores, extra=[{"g": "solo" if i < 20 else "many"} for i in range(100)])
    with pytest.warns(AnalysisWarning, match="'solo' has 1 document"):
        res = analyze(tmp_path / "p.jsonl", tmp_path / "out", group_by="g", model_dir=model_dir, n_boot=50, n_perm=50)
    assert all(np.isnan(r["se"]) and np.isnan(r["p"]) for r in res.report["pairwise"]["rows"])
    assert "one-document group(s) solo" in res.report["pairwise"]["method"]


def test_held_out_validation_corrects_each_region_with_the_other_regions_rates():
    from policyclf.analysis import held_out_validation

    rates = held_out_rates(np.random.default_rng(6), n_docs=40, per_doc=30)
    v = held_out_validation(rates)
    assert {r["region"] for r in v["rows"]} == {"r1", "r2"} and len(v["rows"]) == 14
    r1 = [r for r in v["rows"] if r["region"] == "r1"]
    tpr, fpr = rates.without_region("r1").rates()
    mine = np.array(rates.regions) == "r1"
    raw = (rates.stats["tp"][mine] + rates.stats["fp"][mine]).sum(0) / rates.n[mine].sum()
    assert [r["corrected"] for r in r1] == pytest.approx(adjust(raw, tpr, fpr)[1])
    assert [r["tpr_other_regions"] for r in r1] == pytest.approx(tpr)
    assert v["mae"]["corrected"] < v["mae"]["raw"]  # same error rates everywhere: the correction helps


def test_gold_on_six_region_data(tmp_path):
    """--gold with a random 30 % of the six-region gold records, on the held-out LORO predictions: the
    gold-anchored intervals cover the complete gold share in nearly every region × category."""
    gold_file = ROOT / "data" / "annotated" / "six_regions.jsonl"
    gold = {r["passage_id"]: r for r in map(json.loads, gold_file.open(encoding="utf-8"))}
    rows = []
    for f in sorted((ROOT / "reports" / "distilled" / "predictions" / "distilled").glob("loro-*.jsonl")):
        for r in map(json.loads, f.open(encoding="utf-8")):
            rows.append({"passage_id": r["passage_id"], "region": r["split"].removeprefix("loro-"),
                         "labels": [c for c, s, t in zip(CATEGORIES, r["scores"], r["thresholds"]) if s >= t],
                         "scores": dict(zip(CATEGORIES, r["scores"]))})
    (tmp_path / "pred.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    sample = np.random.default_rng(22).choice(sorted(gold), round(0.3 * len(gold)), replace=False)
    (tmp_path / "gold.jsonl").write_text("".join(json.dumps(gold[p]) + "\n" for p in sample), encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)
        res = analyze(tmp_path / "pred.jsonl", tmp_path / "out", group_by="region", gold=tmp_path / "gold.jsonl",
                      model_dir=ROOT / "models" / "policyclf-distilled", n_boot=50, n_perm=50)
    covered = 0
    for r in res.prevalence:
        pids = [x["passage_id"] for x in rows if x["region"] == r["group"]]
        truth = np.mean([r["category"] in gold[p]["labels"] for p in pids])
        covered += r["gold_lo"] <= truth <= r["gold_hi"]
        assert r["n_gold"] == sum(p in set(sample) for p in pids)
    assert covered >= 0.9 * len(res.prevalence)
