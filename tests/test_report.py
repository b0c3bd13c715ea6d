"""`policyclf report` on the fake corpus: the protocol runs, resumes, and the pages hold no text."""

import json

from typer.testing import CliRunner

from policyclf.cli import app


def _config(tmp_path, fake_repo, fake_corpus):
    ann = fake_repo / "data" / "annotated"
    path = tmp_path / "report.toml"
    path.write_text(
        f'[data]\ncorpus = "{fake_corpus}"\nannotations = ["{ann / "six_regions.jsonl"}"]\n'
        f'[baseline]\nthreshold_folds = 2\n'
        f'[report]\nbackends = ["tfidf"]\nbootstrap = 100\ntest_annotations = "{ann / "other_provinces_test.jsonl"}"\n'
        f'agreement = "{tmp_path / "agreement.json"}"\n')
    agreement = {"overall": {"passages": 10, "human_ceiling_macro_f1": 0.9, "masi_alpha": 0.8},
                 "per_category": {c: {"human_ceiling_f1": 0.85} for c in
                                  ["institutional_system", "government_functions", "social_organizations",
                                   "service_mechanisms", "investment_channels", "talent_teams", "cooperation_platforms"]}}
    (tmp_path / "agreement.json").write_text(json.dumps(agreement))
    return path


def test_report_protocol_and_pages(tmp_path, fake_repo, fake_corpus):

    config = _config(tmp_path, fake_repo, fake_corpus)
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(out)])
    assert res.exit_code == 0, res.output
    preds = sorted(p.name for p in (out / "predictions" / "tfidf").iterdir())
    # regions of the fake corpus: beijing, shanghai, jiangsu have passages; the other three are empty
    assert preds == ["loro-beijing.jsonl", "loro-jiangsu.jsonl", "loro-shanghai.jsonl", "unseen.jsonl"]
    report = json.loads((out / "report.json").read_text())
    loro = report["backends"]["tfidf"]["loro"]
    assert loro["n"] == 48 and set(loro["per_region"]) == {"beijing", "shanghai", "jiangsu"}
    ci = loro["ci_passages"]["macro_f1"]
    assert ci["lo"] <= loro["macro_f1"] <= ci["hi"]
    assert report["backends"]["tfidf"]["unseen"]["n"] == 8
    assert report["human_ceiling"]["per_category"]["talent_teams"] == 0.85
    assert report["headline"][0]["test"] == "leave-one-region-out"
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") >= 4 and "<script" not in html
    corpus_texts = [json.loads(line)["text"] for line in (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    assert not any(t in html or t in (out / "report.json").read_text(encoding="utf-8") for t in corpus_texts)
    # a second run trains nothing (predictions reused) and gives the same numbers
    stamp = (out / "predictions" / "tfidf" / "unseen.jsonl").stat().st_mtime_ns
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(out), "--rebuild-only"])
    assert res.exit_code == 0
    assert (out / "predictions" / "tfidf" / "unseen.jsonl").stat().st_mtime_ns == stamp
    assert json.loads((out / "report.json").read_text())["backends"]["tfidf"]["loro"]["macro_f1"] == loro["macro_f1"]


def test_resumed_report_still_saves_models_atomically(tmp_path, fake_repo, fake_corpus):
    config = _config(tmp_path, fake_repo, fake_corpus)
    out, models = tmp_path / "rep", tmp_path / "models"
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(out)]).exit_code == 0
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(out), "--save-models", str(models)])
    assert res.exit_code == 0, res.output
    meta = json.loads((models / "tfidf" / "meta.json").read_text())
    assert meta["training_data"]["passages"] == 48
    assert (models / "tfidf" / "config.toml").is_file()
    assert not [p for p in models.iterdir() if p.name.startswith(".")]  # no temporary folder left behind
    assert (out / "config.toml").is_file()  # the resolved config is kept with the report


def test_report_numbers_are_rebuilt_from_saved_predictions_only(tmp_path, fake_repo, fake_corpus, monkeypatch):
    config = _config(tmp_path, fake_repo, fake_corpus)
    out = tmp_path / "rep"
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(out)]).exit_code == 0
    from policyclf import training

    def boom(*a, **k):
        raise AssertionError("--rebuild-only must not train")

    monkeypatch.setattr(training, "fit_examples", boom)
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(out), "--rebuild-only"]).exit_code == 0


def test_model_card_numbers_come_from_the_files(tmp_path, fake_repo, fake_corpus):
    from policyclf.model_card import render_model_card

    config = _config(tmp_path, fake_repo, fake_corpus)
    out, models = tmp_path / "rep", tmp_path / "models"
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(out), "--save-models", str(models)]).exit_code == 0
    report = json.loads((out / "report.json").read_text())
    card = render_model_card(models / "tfidf", report, "t")
    meta = json.loads((models / "tfidf" / "meta.json").read_text())
    assert f"{meta['training_data']['passages']:,} annotated passages" in card
    assert meta["training_data"]["fingerprint"] in card
    assert f"{report['backends']['tfidf']['loro']['macro_f1']:.3f}" in card
    assert "3,159" not in card and "0.569" not in card


def test_unseen_split_reuses_only_an_identical_saved_model(tmp_path, fake_repo, fake_corpus):
    config = _config(tmp_path, fake_repo, fake_corpus)
    models = tmp_path / "models"
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(tmp_path / "a"), "--save-models",
                                    str(models)]).exit_code == 0
    first = (tmp_path / "a" / "predictions" / "tfidf" / "unseen.jsonl").read_text().splitlines()
    # the saved model is the one the unseen split trains: reused, and it gives the same scores
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(tmp_path / "b"), "--reuse-model",
                                   str(models / "tfidf")])
    assert res.exit_code == 0, res.output
    assert "scoring 8 with the saved model" in res.output
    rows = [json.loads(r) for r in (tmp_path / "b" / "predictions" / "tfidf" / "unseen.jsonl").read_text().splitlines()]
    assert all(r["reused_model"] == str(models / "tfidf") for r in rows)
    assert [r["scores"] for r in rows] == [json.loads(r)["scores"] for r in first]
    # other settings: refused with the reason, and the split is trained
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(tmp_path / "c"), "--reuse-model",
                                   str(models / "tfidf"), "--baseline.C", "0.5"])
    assert res.exit_code == 0, res.output
    assert "not reusing" in res.output and "C 4.0 vs 0.5" in res.output
    rows = [json.loads(r) for r in (tmp_path / "c" / "predictions" / "tfidf" / "unseen.jsonl").read_text().splitlines()]
    assert "reused_model" not in rows[0]
    # other training data: refused
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(tmp_path / "d"), "--reuse-model",
                                   str(models / "tfidf"), "--data.regions", '["beijing", "shanghai"]'])
    assert res.exit_code == 0, res.output
    assert "training-data fingerprint differs" in res.output


def test_learning_curve_ends_with_the_main_protocol(tmp_path, fake_repo, fake_corpus, monkeypatch):
    from policyclf.config import load_config
    from policyclf.learning_curve import curve_numbers

    monkeypatch.setenv("POLICYCLF_HOME", str(fake_repo))
    (fake_repo / "data" / "annotated" / "rounds").mkdir()
    (fake_repo / "data" / "annotated" / "rounds" / "al1.picks.jsonl").write_text('{"run_strategy": "mixed"}\n')
    config = _config(tmp_path, fake_repo, fake_corpus)
    out = tmp_path / "rep"
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(out)]).exit_code == 0
    rows = curve_numbers(load_config(config), out)
    # no curve point has run yet: the only row is the end point, read from the main protocol
    assert [(r["point"], r["arm"], r["backend"], r["passages"]) for r in rows] == [("all", "both", "tfidf", 48)]
    report = json.loads((out / "report.json").read_text())
    assert rows[0]["loro_macro_f1"] == report["backends"]["tfidf"]["loro"]["macro_f1"]
    assert rows[0]["unseen_macro_f1"] == report["backends"]["tfidf"]["unseen"]["macro_f1"]


def test_end_point_is_compared_with_the_base_point_on_the_same_passages(tmp_path, fake_repo, fake_corpus, monkeypatch):
    import shutil

    from policyclf.config import load_config
    from policyclf.learning_curve import comparison_markdown, end_against_base

    config = _config(tmp_path, fake_repo, fake_corpus)
    out = tmp_path / "rep"
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(out)]).exit_code == 0
    base = out / "curve" / "base" / "predictions"
    shutil.copytree(out / "predictions", base)
    # the base point predicts nothing anywhere: every F1 is 0, so the end point gains its own macro-F1
    for path in (base / "tfidf").iterdir():
        rows = [json.loads(r) for r in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "scores": [0.0] * 7}) + "\n" for r in rows))
    rows = end_against_base(load_config(config), out, n_boot=50)
    report = json.loads((out / "report.json").read_text())["backends"]["tfidf"]
    by_test = {r["test"]: r for r in rows}
    assert set(by_test) >= {"loro", "unseen"} and by_test["loro"]["n"] == 48
    assert by_test["loro"]["base_macro_f1"] == 0.0
    assert by_test["loro"]["diff"] == by_test["loro"]["end_macro_f1"] == report["loro"]["macro_f1"] > 0
    assert by_test["unseen"]["end_macro_f1"] == report["unseen"]["macro_f1"]
    assert by_test["loro"]["lo"] <= by_test["loro"]["diff"] <= by_test["loro"]["hi"]
    assert "| tfidf | loro | 48 | 0.000 |" in comparison_markdown(rows)
    # a held-out region missing at the end point: no pooled leave-one-region-out comparison
    (out / "predictions" / "tfidf" / "loro-beijing.jsonl").unlink()
    assert [r["test"] for r in end_against_base(load_config(config), out, n_boot=50)] == ["unseen"]


def test_a_student_card_shows_the_paired_comparison_with_its_teacher(tmp_path, fake_repo, fake_corpus):
    from policyclf.model_card import render_model_card
    from policyclf.retrain import compare_models

    config = _config(tmp_path, fake_repo, fake_corpus)
    models = tmp_path / "models"
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(tmp_path / "rep"), "--save-models",
                                    str(models)]).exit_code == 0
    test = fake_repo / "data" / "annotated" / "other_provinces_test.jsonl"
    comp = compare_models(models / "tfidf", models / "tfidf", test, corpus=str(fake_corpus), n_boot=100)
    assert comp["decision_agreement"] == 1.0 and comp["macro_f1"]["diff"] == 0
    import policyclf.retrain as retrain_module

    asked, real_load = [], retrain_module.load_model
    retrain_module.load_model = lambda d, **kw: asked.append(kw) or real_load(d)
    try:  # a fixed precision reaches both models (a comparison that does not depend on the CPU)
        assert compare_models(models / "tfidf", models / "tfidf", test, corpus=str(fake_corpus), n_boot=100,
                              precision="float32")["macro_f1"] == comp["macro_f1"]
    finally:
        retrain_module.load_model = real_load
    assert asked == [{"inference_dtype": "float32"}] * 2
    meta_path = models / "tfidf" / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["teacher_comparison"] = comp
    meta_path.write_text(json.dumps(meta))
    card = render_model_card(models / "tfidf")
    assert "## Against its teacher" in card and "| | teacher | student |" in card
    assert "Decisions (passage × category) agreeing with the teacher: 100.0%" in card
    assert f"| macro-F1 | {comp['current']['macro_f1']:.3f} | {comp['new']['macro_f1']:.3f} |" in card


def test_two_prediction_sets_are_compared_split_by_split_and_pooled(tmp_path):
    import numpy as np

    from policyclf.corpus import Example, Passage
    from policyclf.labels import CATEGORIES
    from policyclf.protocol import compare_prediction_sets

    rng = np.random.default_rng(1)
    examples, rows = [], {"a": {}, "b": {}}
    for split in ("loro-x", "loro-y"):
        for k in range(40):
            pid = f"{split}-{k:03d}"
            labels = tuple(c for c in CATEGORIES if rng.random() < 0.3)
            examples.append(Example(Passage(pid, f"{split}-doc{k % 5}", "r", "regulation", "six_regions", k, "", "t"),
                                    labels, ()))
            truth = np.array([c in labels for c in CATEGORIES], dtype=float)
            noisy = truth.copy()
            if k % 4 == 0:
                noisy[0] = 1 - noisy[0]  # b gets category 0 wrong on every fourth passage
            rows["a"].setdefault(split, []).append({"passage_id": pid, "scores": list(truth), "thresholds": [0.5] * 7})
            rows["b"].setdefault(split, []).append({"passage_id": pid, "scores": list(noisy), "thresholds": [0.5] * 7})
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        for split, recs in rows[side].items():
            (tmp_path / side / f"{split}.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    (tmp_path / "a" / "loro-z.jsonl").write_text("")  # a split only one side has: skipped
    out = compare_prediction_sets(tmp_path / "a", tmp_path / "b", examples, n_boot=200)
    assert [r["split"] for r in out["splits"]] == ["loro-x", "loro-y"]
    for r in [*out["splits"], out["pooled"]]:
        assert r["a_macro_f1"] == 1.0 and r["b_macro_f1"] < 1.0 and r["diff"] > 0
        assert r["decision_agreement"] == round(1 - (10 / 40) / 7, 4)
    assert out["pooled"]["passages"] == 80 and out["pooled"]["ci"][0] > 0
    # per category: only category 0 differs; per genre: the supported macro over categories with ≥ 20 positives
    pc = out["pooled"]["per_category"]
    assert pc[CATEGORIES[0]]["a_f1"] == 1.0 and pc[CATEGORIES[0]]["b_f1"] < 1.0
    assert all(pc[c]["a_f1"] == pc[c]["b_f1"] for c in CATEGORIES[1:] if pc[c]["support"])
    genre = out["pooled"]["per_doc_type"]["regulation"]
    assert genre["passages"] == 80
    assert genre["supported_categories"] == [c for c in CATEGORIES if pc[c]["support"] >= 20]
    assert genre["a_macro_f1_supported"] == 1.0 and genre["diff"] > 0


CURVE = [  # the order curve_numbers writes: the points, then the end point "all"
    {"point": "base", "arm": "both", "backend": "bert", "passages": 3159, "loro_macro_f1": 0.69, "unseen_macro_f1": 0.58},
    {"point": "base", "arm": "both", "backend": "tfidf", "passages": 3159, "loro_macro_f1": 0.75, "unseen_macro_f1": 0.62},
    {"point": "al1", "arm": "active", "backend": "tfidf", "passages": 3559, "loro_macro_f1": 0.75, "unseen_macro_f1": 0.58},
    {"point": "al1+al2", "arm": "active", "backend": "tfidf", "passages": 3959, "loro_macro_f1": 0.746},
    {"point": "r0", "arm": "random", "backend": "tfidf", "passages": 3559, "loro_macro_f1": 0.746, "unseen_macro_f1": 0.577},
    {"point": "all", "arm": "both", "backend": "bert", "passages": 5159, "loro_macro_f1": 0.741, "unseen_macro_f1": 0.65},
    {"point": "all", "arm": "both", "backend": "tfidf", "passages": 4359, "loro_macro_f1": 0.747, "unseen_macro_f1": 0.657},
]


def test_learning_curve_draws_measured_points_only_and_names_arms_not_run():
    """Issue 23: BERT, measured at the base and the end only, is two unjoined points, not two 'arms';
    an arm's line runs through its own points in order of training size, never through 'all'."""
    from policyclf.report_html import arms_not_run, curve_series

    loro = curve_series(CURVE, "loro_macro_f1")
    assert loro["bert"] == {"points": [(3159, 0.69, "base"), (5159, 0.741, "all")]}
    assert loro["tfidf"]["active"] == [(3159, 0.75, "base"), (3559, 0.75, "al1"), (3959, 0.746, "al1+al2")]
    assert loro["tfidf"]["random"] == [(3159, 0.75, "base"), (3559, 0.746, "r0")]
    assert loro["tfidf"]["points"] == [(4359, 0.747, "all")]
    unseen = curve_series(CURVE, "unseen_macro_f1")  # a point without the score is left out, not drawn as 0
    assert unseen["tfidf"]["active"] == [(3159, 0.62, "base"), (3559, 0.58, "al1")]
    assert arms_not_run(CURVE) == ["bert active", "bert random"]


def test_report_page_curve_note_scrolling_tables_and_supports_per_document_type(tmp_path, fake_repo, fake_corpus):
    from policyclf.labels import CATEGORIES

    config = _config(tmp_path, fake_repo, fake_corpus)
    out = tmp_path / "rep"
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(out)]).exit_code == 0
    curve = [{**r, "loro_per_category": {c: 0.5 for c in CATEGORIES}} for r in CURVE]
    (out / "curve.json").write_text(json.dumps(curve))
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(out), "--rebuild-only"])
    assert res.exit_code == 0, res.output
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "Not run: bert active, bert random arms." in page
    assert page.count("<table>") == page.count("<div class='scroll'><table>") > 5  # wide tables scroll, not spill
    assert ".scroll{max-width:100%;overflow-x:auto}" in page
    # per document type: the per-category table with its supports (positives of that type)
    report = json.loads((out / "report.json").read_text())
    reg = report["backends"]["tfidf"]["loro"]["per_doc_type"]["regulation"]["per_category"]
    assert "<th>regulation positives</th>" in page and "categories with &lt; 20 positives" in page
    row = page.split("<td>talent_teams</td>", 2)[2].split("</tr>")[0]  # after the two whole-set tables
    assert f"<td>{reg['talent_teams']['support']}</td>" in row and " *</td>" in row  # 4 positives: marked


def test_a_partial_leave_one_region_out_is_labelled_and_kept_off_the_curve(tmp_path, fake_repo, fake_corpus, monkeypatch):
    """A backend with only some held-out folds saved (a run still going, or `--report.loro_regions`) is
    not called leave-one-region-out without saying which regions are missing, and is no curve point."""
    from policyclf.config import load_config
    from policyclf.learning_curve import curve_numbers

    monkeypatch.setenv("POLICYCLF_HOME", str(fake_repo))
    config = _config(tmp_path, fake_repo, fake_corpus)
    out = tmp_path / "rep"
    res = CliRunner().invoke(app, ["report", str(config), "-o", str(out), "--report.loro_regions", '["beijing"]',
                                   "--report.unseen", "false"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "report.json").read_text())
    assert report["backends"]["tfidf"]["loro"]["missing_regions"] == ["shanghai", "jiangsu"]
    assert report["headline"][0]["test"] == "leave-one-region-out (beijing only; not yet: shanghai, jiangsu)"
    assert "beijing only; not yet: shanghai, jiangsu" in (out / "report.html").read_text(encoding="utf-8")
    assert curve_numbers(load_config(config), out) == []
    # the other folds run: complete again, and the end point of the curve
    assert CliRunner().invoke(app, ["report", str(config), "-o", str(out)]).exit_code == 0
    report = json.loads((out / "report.json").read_text())
    assert report["backends"]["tfidf"]["loro"]["missing_regions"] == []
    assert report["headline"][0]["test"] == "leave-one-region-out"
    assert [r["point"] for r in curve_numbers(load_config(config), out)] == ["all"]
