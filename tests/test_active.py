"""Active learning (`data suggest`), annotation-tool imports (`data import`) and `retrain`."""

import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import TOY
from policyclf.cli import app
from policyclf.corpus import text_sha1
from policyclf.labels import CATEGORIES

runner = CliRunner()
POOL_TEXTS = [f"{t}（池{k}）" for k, (t, _) in enumerate(TOY * 3)] + ["设立科技专项资金支持企业研发（池0）重复"]


@pytest.fixture()
def pool_repo(fake_repo, fake_corpus):
    """The fake corpus plus a six_regions_pool of 25 passages (one a near-copy of another)."""
    rows = [json.loads(x) for x in (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines()]
    for k, text in enumerate(POOL_TEXTS, 1):
        rows.append({"passage_id": f"zhejiang-reg-eeee0005-{k:03d}", "doc_id": "zhejiang-reg-eeee0005",
                     "region": "zhejiang", "doc_type": "regulation", "pool": "six_regions_pool", "seq": k,
                     "heading": "第二章", "text": text})
    (fake_corpus / "passages.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                                encoding="utf-8")
    (fake_corpus / "documents.jsonl").write_text(json.dumps({"doc_id": "zhejiang-reg-eeee0005", "title": "测试条例"},
                                                            ensure_ascii=False) + "\n", encoding="utf-8")
    return fake_repo


@pytest.fixture()
def tfidf_model(pool_repo, fake_corpus, tmp_path):
    from policyclf.corpus import load_examples, load_passages
    from policyclf.models.tfidf import TfidfClassifier

    ex = load_examples([pool_repo / "data" / "annotated" / "six_regions.jsonl"], load_passages(fake_corpus))
    model = TfidfClassifier(threshold_folds=2).fit([e.text for e in ex], [list(e.labels) for e in ex])
    return model.save(tmp_path / "model")


def suggest(pool_repo, fake_corpus, out, *args):
    return runner.invoke(app, ["data", "suggest", "-o", str(out), "--corpus", str(fake_corpus), "--root",
                               str(pool_repo), "--quiet", *args])


def read_lines(path):
    return [json.loads(x) for x in Path(path).read_text(encoding="utf-8").splitlines()]


def test_random_suggest_is_seeded_skips_coded_and_hides_scores(pool_repo, fake_corpus, tmp_path):
    res = suggest(pool_repo, fake_corpus, tmp_path / "a.jsonl", "-n", "10", "--strategy", "random", "--seed", "5")
    assert res.exit_code == 0, res.output
    picks = read_lines(tmp_path / "a.jsonl")
    assert len(picks) == 10 and all(p["passage_id"].startswith("zhejiang-reg-eeee0005") for p in picks)
    assert all(set(p) == {"passage_id", "doc_id", "title", "region", "doc_type", "heading", "text"} for p in picks)
    assert picks[0]["title"] == "测试条例"
    log = read_lines(tmp_path / "a.jsonl.picks.jsonl")
    assert [r["passage_id"] for r in log] == [p["passage_id"] for p in picks]
    assert all(r["strategy"] == "random" and "seed 5" in r["reason"] for r in log)
    again = suggest(pool_repo, fake_corpus, tmp_path / "b.jsonl", "-n", "10", "--strategy", "random", "--seed", "5")
    assert again.exit_code == 0 and read_lines(tmp_path / "b.jsonl") == picks
    # open picks are excluded; coded passages are never offered
    rest = suggest(pool_repo, fake_corpus, tmp_path / "c.jsonl", "-n", "100", "--strategy", "random",
                   "--exclude-picks", str(tmp_path / "a.jsonl.picks.jsonl"))
    assert rest.exit_code == 0
    left = {p["passage_id"] for p in read_lines(tmp_path / "c.jsonl")}
    assert not left & {p["passage_id"] for p in picks} and len(left) <= 15


def test_mixed_suggest_shares_reasons_and_no_near_duplicates(pool_repo, fake_corpus, tfidf_model, tmp_path):
    res = suggest(pool_repo, fake_corpus, tmp_path / "m.jsonl", "-n", "10", "--model", str(tfidf_model))
    assert res.exit_code == 0, res.output
    log = read_lines(tmp_path / "m.jsonl.picks.jsonl")
    assert [r["strategy"] for r in log].count("uncertainty") == 5
    assert [r["strategy"] for r in log].count("diversity") == 3 and [r["strategy"] for r in log].count("random") == 2
    assert all(len(r["scores"]) == 7 and r["model"] == str(tfidf_model) for r in log)
    assert all("threshold" in r["reason"] for r in log if r["strategy"] == "uncertainty")
    texts = [p["text"] for p in read_lines(tmp_path / "m.jsonl")]
    assert not ("设立科技专项资金支持企业研发（池0）" in texts and POOL_TEXTS[-1] in texts)  # near-copies never together
    assert "scores" not in (tmp_path / "m.jsonl").read_text(encoding="utf-8")


def test_uncertainty_ranks_near_threshold_and_weak_categories_first():
    import numpy as np

    from policyclf.active import category_weights, uncertainty_scores

    thr = np.full(7, 0.5)
    scores = np.array([[0.1] * 7, [0.1] * 7, [0.1] * 7])
    scores[0, 0] = 0.49  # near the threshold of a strong category
    scores[1, 2] = 0.45  # a little further, but in the weakest category
    weights = category_weights({c: (0.3 if c == "social_organizations" else 0.9) for c in CATEGORIES})
    value, cat = uncertainty_scores(scores, thr, weights)
    assert value.argmax() == 1 and cat[1] == 2 and value[2] < value[0]


def test_label_studio_tasks_only_carry_predictions_on_request(pool_repo, fake_corpus, tfidf_model, tmp_path):
    res = suggest(pool_repo, fake_corpus, tmp_path / "ls.json", "-n", "4", "--model", str(tfidf_model),
                  "--format", "label-studio")
    assert res.exit_code == 0, res.output
    tasks = json.loads((tmp_path / "ls.json").read_text(encoding="utf-8"))
    assert len(tasks) == 4 and all("predictions" not in t and t["data"]["passage_id"] for t in tasks)
    res = suggest(pool_repo, fake_corpus, tmp_path / "lsp.json", "-n", "4", "--model", str(tfidf_model),
                  "--format", "label-studio", "--with-predictions")
    tasks = json.loads((tmp_path / "lsp.json").read_text(encoding="utf-8"))
    pred = tasks[0]["predictions"][0]["result"][0]
    assert pred["from_name"] == "categories" and set(pred["value"]["choices"]) <= set(CATEGORIES)
    bad = suggest(pool_repo, fake_corpus, tmp_path / "x.jsonl", "-n", "4", "--with-predictions")
    assert bad.exit_code == 1 and "only for --format label-studio" in bad.output


def test_label_studio_config_is_shipped_and_current():
    from policyclf.annotation_tools import label_studio_config

    shipped = (Path(__file__).resolve().parents[1] / "configs" / "label-studio.xml").read_text(encoding="utf-8")
    assert shipped == label_studio_config()
    assert '<Choices name="categories" toName="text" choice="multiple"' in shipped
    assert all(f'value="{c}"' in shipped for c in CATEGORIES) and 'name="subcodes"' in shipped


def _ls_task(k, pid, text, choices, n_annotations=1, subcodes=()):
    result = [{"from_name": "categories", "to_name": "text", "type": "choices", "value": {"choices": list(choices)}}]
    if subcodes:
        result.append({"from_name": "subcodes", "to_name": "text", "type": "choices",
                       "value": {"choices": list(subcodes)}})
    return {"id": k, "data": {"passage_id": pid, "text": text},
            "annotations": [{"id": 100 + k + i, "completed_by": 1, "was_cancelled": False, "result": result}
                            for i in range(n_annotations)]}


def pool_passages(fake_corpus):
    return [json.loads(x) for x in (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines()
            if "six_regions_pool" in x]


def test_import_label_studio_export(pool_repo, fake_corpus, tmp_path):
    p = pool_passages(fake_corpus)
    export = tmp_path / "export.json"
    export.write_text(json.dumps([
        _ls_task(1, p[0]["passage_id"], p[0]["text"], ["investment_channels"], subcodes=["government_funding"]),
        _ls_task(2, p[1]["passage_id"], p[1]["text"], []),
    ], ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "recs.jsonl"
    res = runner.invoke(app, ["data", "import", str(export), "--format", "label-studio", "--coder", "C9", "-o",
                              str(out), "--corpus", str(fake_corpus), "--root", str(pool_repo)])
    assert res.exit_code == 0, res.output
    recs = read_lines(out)
    assert recs[0] == {"passage_id": p[0]["passage_id"], "text_sha1": text_sha1(p[0]["text"]),
                       "labels": ["investment_channels"], "subcodes": ["government_funding"], "coder": "C9", "note": ""}
    assert recs[1]["labels"] == []


@pytest.mark.parametrize("mutate, message", [
    (lambda t, p: t.__setitem__(1, _ls_task(2, p[1]["passage_id"], p[1]["text"], [], n_annotations=0)),
     "task 2 (id 2): 0 annotations"),
    (lambda t, p: t.__setitem__(1, _ls_task(2, p[1]["passage_id"], p[1]["text"], [], n_annotations=2)),
     "task 2 (id 2): 2 annotations"),
    (lambda t, p: t.__setitem__(0, _ls_task(1, p[0]["passage_id"], p[0]["text"], ["talent"])),
     "task 1 (id 1): unknown label 'talent'"),
    (lambda t, p: t.__setitem__(0, _ls_task(1, p[0]["passage_id"], p[0]["text"] + "改", [])),
     "task 1 (id 1): the text of"),
    (lambda t, p: t.__setitem__(0, _ls_task(1, "nowhere-reg-00000000-001", "x", [])),
     "task 1 (id 1): unknown passage_id 'nowhere-reg-00000000-001'"),
])
def test_import_label_studio_refusals(pool_repo, fake_corpus, tmp_path, mutate, message):
    p = pool_passages(fake_corpus)
    tasks = [_ls_task(1, p[0]["passage_id"], p[0]["text"], []), _ls_task(2, p[1]["passage_id"], p[1]["text"], [])]
    mutate(tasks, p)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(tasks, ensure_ascii=False), encoding="utf-8")
    res = runner.invoke(app, ["data", "import", str(export), "--format", "label-studio", "--coder", "C9", "-o",
                              str(tmp_path / "o.jsonl"), "--corpus", str(fake_corpus), "--root", str(pool_repo)])
    assert res.exit_code == 1 and message in res.output and str(export) in res.output
    assert not (tmp_path / "o.jsonl").exists()


def test_import_doccano_export_and_refusals(pool_repo, fake_corpus, tmp_path):
    p = pool_passages(fake_corpus)
    export = tmp_path / "doccano.jsonl"
    lines = [{"id": 7, "text": p[0]["text"], "label": ["talent_teams", "team_building"], "passage_id": p[0]["passage_id"]},
             {"id": 8, "text": p[1]["text"], "label": [], "passage_id": p[1]["passage_id"]}]
    export.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    out = tmp_path / "o.jsonl"
    args = ["--format", "doccano", "--coder", "D1", "-o", str(out), "--corpus", str(fake_corpus), "--root", str(pool_repo)]
    res = runner.invoke(app, ["data", "import", str(export), *args])
    assert res.exit_code == 0, res.output
    recs = read_lines(out)
    assert recs[0]["labels"] == ["talent_teams"] and recs[0]["subcodes"] == ["team_building"]
    res = runner.invoke(app, ["data", "import", str(export), *args])
    assert res.exit_code == 1 and "already exists; pass --force" in res.output
    lines[1]["label"] = ["platforms"]
    export.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    res = runner.invoke(app, ["data", "import", str(export), *args, "--force"])
    assert res.exit_code == 1 and f"{export} line 2: unknown label 'platforms'" in res.output


def test_import_never_silently_recodes_annotated_passages(pool_repo, fake_corpus, tmp_path):
    six = read_lines(pool_repo / "data" / "annotated" / "six_regions.jsonl")
    passages = {r["passage_id"]: r for r in map(json.loads, (fake_corpus / "passages.jsonl").read_text(encoding="utf-8").splitlines())}
    src = tmp_path / "coder.jsonl"
    src.write_text(json.dumps({"passage_id": six[0]["passage_id"], "labels": [], "subcodes": []}) + "\n")
    args = ["data", "import", str(src), "--format", "jsonl", "--coder", "B", "--corpus", str(fake_corpus), "--root", str(pool_repo)]
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1 and "already have a final record" in res.output
    res = runner.invoke(app, [*args, "-o", str(tmp_path / "o.jsonl"), "--allow-coded"])
    assert res.exit_code == 0 and read_lines(tmp_path / "o.jsonl")[0]["text_sha1"] == text_sha1(passages[six[0]["passage_id"]]["text"])
    target = pool_repo / "data" / "annotated" / "six_regions.jsonl"
    before = target.read_text()
    res = runner.invoke(app, [*args, "-o", str(target), "--allow-coded"])
    assert res.exit_code == 1 and "already exists" in res.output and target.read_text() == before


def _config(tmp_path, repo, corpus, annotations, name):
    ann = repo / "data" / "annotated"
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[data]\ncorpus = "{corpus}"\nannotations = [{", ".join(repr(str(a)) for a in annotations)}]\n'
                    f'[model]\nbackend = "tfidf"\n[baseline]\nthreshold_folds = 2\n'
                    f'[report]\nbootstrap = 200\ntest_annotations = "{ann / "other_provinces_test.jsonl"}"\n')
    return path


def test_retrain_compares_and_promotes_only_when_not_worse(pool_repo, fake_corpus, tmp_path):
    ann = pool_repo / "data" / "annotated"
    good = _config(tmp_path, pool_repo, fake_corpus, [ann / "six_regions.jsonl"], "good")
    assert runner.invoke(app, ["train", str(good), "-o", str(tmp_path / "current")]).exit_code == 0
    res = runner.invoke(app, ["retrain", str(good), "--against", str(tmp_path / "current"), "-o", str(tmp_path / "new"),
                              "--promote"])
    assert res.exit_code == 0, res.output
    assert "no significant difference" in res.output and "promoted" in res.output
    card = (tmp_path / "new" / "MODEL_CARD.md").read_text()
    assert "Comparison with the model it replaces" in card and "training-data fingerprint" in card
    assert json.loads((tmp_path / "current" / "meta.json").read_text())["comparison"]["verdict"] == "no significant difference"
    from policyclf.config import load_config

    moved = load_config(tmp_path / "current" / "config.toml")  # paths rewritten for the promoted location
    assert moved.resolve(moved.data.annotations[0]) == ann / "six_regions.jsonl"
    # a model trained on labels that are all empty predicts nothing: significantly worse, never promoted
    empty = tmp_path / "empty.jsonl"
    empty.write_text("".join(json.dumps({**r, "labels": [], "subcodes": []}) + "\n" for r in read_lines(ann / "six_regions.jsonl")))
    bad = _config(tmp_path, pool_repo, fake_corpus, [empty], "bad")
    before = (tmp_path / "current" / "meta.json").read_text()
    res = runner.invoke(app, ["retrain", str(bad), "--against", str(tmp_path / "current"), "-o", str(tmp_path / "worse"),
                              "--promote"])
    assert res.exit_code == 1 and "not promoted: the new model is significantly worse" in res.output
    assert (tmp_path / "current" / "meta.json").read_text() == before
    assert "significantly worse" in (tmp_path / "worse" / "MODEL_CARD.md").read_text()


def test_retrain_reuses_an_identical_saved_model_and_refuses_another(pool_repo, fake_corpus, tmp_path, monkeypatch):
    ann = pool_repo / "data" / "annotated"
    cfg_dir = tmp_path / "configs"
    cfg_dir.mkdir()
    good = cfg_dir / "good.toml"  # relative paths, so a copied model's config must be rewritten to hold
    good.write_text(f'[data]\ncorpus = "{fake_corpus}"\n'
                    f'annotations = ["{os.path.relpath(ann / "six_regions.jsonl", cfg_dir)}"]\n'
                    f'[model]\nbackend = "tfidf"\n[baseline]\nthreshold_folds = 2\n'
                    f'[report]\nbootstrap = 200\ntest_annotations = "{ann / "other_provinces_test.jsonl"}"\n')
    assert runner.invoke(app, ["train", str(good), "-o", str(tmp_path / "current")]).exit_code == 0
    saved = tmp_path / "runs" / "deeper" / "saved"
    assert runner.invoke(app, ["train", str(good), "-o", str(saved)]).exit_code == 0
    other = cfg_dir / "other.toml"
    other.write_text(good.read_text().replace("threshold_folds = 2", "threshold_folds = 3"))
    assert runner.invoke(app, ["train", str(other), "-o", str(tmp_path / "different")]).exit_code == 0

    import policyclf.retrain as rt

    def no_training(*a, **k):
        raise AssertionError("trained although an identical saved model was given")

    monkeypatch.setattr(rt, "fit_examples", no_training)
    new = tmp_path / "new"
    new.mkdir()
    (new / "stray.bin").write_text("left from an earlier model")
    res = runner.invoke(app, ["retrain", str(good), "--against", str(tmp_path / "current"), "-o", str(new), "--force",
                              "--reuse-model", str(tmp_path / "different"), "--reuse-model", str(saved)])
    assert res.exit_code == 0, res.output
    out = res.output
    assert out.index("not reusing") < out.index("reusing " + str(saved)) and "threshold_folds" in out
    assert not (new / "stray.bin").exists()  # the copy replaces the folder, it does not merge into it
    meta = json.loads((new / "meta.json").read_text())
    assert meta["reused_from"] == str(saved) and meta["comparison"]["reused_model"] == str(saved)
    assert "copy of" in (new / "MODEL_CARD.md").read_text()
    from policyclf.config import load_config

    copied = load_config(new / "config.toml")
    assert copied.resolve(copied.data.annotations[0]) == ann / "six_regions.jsonl"
    # the reused model must not be the output, and a refused model alone means training as before
    res = runner.invoke(app, ["retrain", str(good), "--against", str(tmp_path / "current"), "-o", str(saved),
                              "--force", "--reuse-model", str(saved)])
    assert res.exit_code == 1 and "--reuse-model must differ from -o" in res.output
    res = runner.invoke(app, ["retrain", str(good), "--against", str(tmp_path / "current"), "-o", str(tmp_path / "new2"),
                              "--reuse-model", str(tmp_path / "different")])
    assert res.exit_code == 1 and "trained although" in repr(res.exception)


def test_learning_curve_points_follow_the_rounds():
    from policyclf.learning_curve import curve_points

    points = curve_points({"al2": "mixed", "r0": "random", "al1": "mixed"})
    assert [(p.name, p.arm, p.rounds) for p in points] == [
        ("base", "both", ()), ("al1", "active", ("al1",)), ("al1+al2", "active", ("al1", "al2")),
        ("r0", "random", ("r0",))]
    # a later data version continues from an earlier one: its rounds (and whole-slice rounds with no picks
    # log) form the base, the new rounds are the arms
    later = curve_points({"al1": "mixed", "r0": "random", "xw1": "mixed", "xw2": "mixed", "xw0": "random"},
                         base=("al1", "r0", "xr1"))
    assert [(p.name, p.arm, p.rounds) for p in later] == [
        ("base", "both", ("al1", "r0", "xr1")), ("xw1", "active", ("al1", "r0", "xr1", "xw1")),
        ("xw1+xw2", "active", ("al1", "r0", "xr1", "xw1", "xw2")), ("xw0", "random", ("al1", "r0", "xr1", "xw0"))]


def test_rounds_filter_keeps_v1_records(pool_repo, fake_corpus):
    from policyclf.corpus import load_examples, load_passages

    passages = load_passages(fake_corpus)
    p = pool_passages(fake_corpus)
    pool_file = pool_repo / "data" / "annotated" / "six_regions_pool.jsonl"
    pool_file.write_text("".join(json.dumps({"passage_id": x["passage_id"], "text_sha1": text_sha1(x["text"]),
                                             "labels": [], "subcodes": [], "coder": "A", "round": r}) + "\n"
                                 for x, r in zip(p, ["al1", "al2", "r0"])))
    files = [pool_repo / "data" / "annotated" / "six_regions.jsonl", pool_file]
    assert len(load_examples(files, passages)) == 48 + 3
    assert len(load_examples(files, passages, rounds=["al1"])) == 48 + 1
    assert len(load_examples(files, passages, rounds=[])) == 48
