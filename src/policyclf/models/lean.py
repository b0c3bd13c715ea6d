"""A lean inference runtime for BERT-architecture encoders: plain torch modules and the
``tokenizers`` library, with the weights read straight from the checkpoint's safetensors.

Loading a model through transformers costs seconds before the first passage is scored (importing
transformers, building the model class, ``AutoTokenizer``); scoring needs none of it. The lean
modules keep transformers' parameter names and computation order (embeddings: word + token type,
+ position, LayerNorm; layers: scaled-dot-product attention, residual + LayerNorm, exact-erf GELU
feed-forward, residual + LayerNorm), so a loaded model scores as the transformers model does
(tested to 1e-5). Used only for inference and only where it applies — ``model_type`` ``bert``,
absolute positions, a ``tokenizer.json`` and ``model.safetensors`` in a local directory;
anything else loads through transformers. ``POLICYCLF_RUNTIME=transformers`` forces the latter.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

RUNTIMES = ("auto", "lean", "transformers")


class _Namespace(nn.Module):
    """A container module, so that parameter names follow transformers' (``attention.self.query``)."""


class LeanEmbeddings(nn.Module):
    def __init__(self, cfg: SimpleNamespace) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.position_embeddings = nn.Embedding(cfg.max_position_embeddings, cfg.hidden_size)
        self.token_type_embeddings = nn.Embedding(cfg.type_vocab_size, cfg.hidden_size)
        self.LayerNorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        types = torch.zeros_like(input_ids)
        hidden = self.word_embeddings(input_ids) + self.token_type_embeddings(types)
        hidden = hidden + self.position_embeddings(positions)[None]
        return self.LayerNorm(hidden)


class LeanLayer(nn.Module):
    def __init__(self, cfg: SimpleNamespace) -> None:
        super().__init__()
        h, i = cfg.hidden_size, cfg.intermediate_size
        self.heads = cfg.num_attention_heads
        self.attention = _Namespace()
        self.attention.self = _Namespace()
        for name in ("query", "key", "value"):
            setattr(self.attention.self, name, nn.Linear(h, h))
        self.attention.output = _Namespace()
        self.attention.output.dense = nn.Linear(h, h)
        self.attention.output.LayerNorm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)
        self.intermediate = _Namespace()
        self.intermediate.dense = nn.Linear(h, i)
        self.output = _Namespace()
        self.output.dense = nn.Linear(i, h)
        self.output.LayerNorm = nn.LayerNorm(h, eps=cfg.layer_norm_eps)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        b, n, h = hidden.shape
        att = self.attention.self

        def split(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, n, self.heads, h // self.heads).transpose(1, 2)

        ctx = F.scaled_dot_product_attention(split(att.query(hidden)), split(att.key(hidden)), split(att.value(hidden)),
                                             attn_mask=mask, dropout_p=0.0, scale=(h // self.heads) ** -0.5)
        ctx = ctx.transpose(1, 2).reshape(b, n, h)
        hidden = self.attention.output.LayerNorm(self.attention.output.dense(ctx) + hidden)
        inner = F.gelu(self.intermediate.dense(hidden))
        return self.output.LayerNorm(self.output.dense(inner) + hidden)


class LeanBert(nn.Module):
    """The encoder part of a transformers ``BertModel`` (no pooler), for inference."""

    lean = True

    def __init__(self, cfg: SimpleNamespace) -> None:
        super().__init__()
        self.config = cfg
        self.embeddings = LeanEmbeddings(cfg)
        self.encoder = _Namespace()
        self.encoder.layer = nn.ModuleList(LeanLayer(cfg) for _ in range(cfg.num_hidden_layers))

    @staticmethod
    def attention_mask(mask: torch.Tensor) -> torch.Tensor | None:
        """Keys a query may attend to, as sdpa takes it: (batch, 1, 1, tokens) booleans; None = all."""
        if bool(mask.all()):
            return None
        return mask.bool()[:, None, None, :]


class LeanTokenizer:
    """The checkpoint's ``tokenizer.json`` through the ``tokenizers`` library, called like a
    transformers fast tokenizer for what policyclf needs (ids without special tokens). A large
    Unigram vocabulary loads as its exact pruned copy (``pruned_tokenizer``)."""

    def __init__(self, path: Path) -> None:
        from policyclf.models.pruned_tokenizer import TwoTierTokenizer

        self._tk = TwoTierTokenizer(path / "tokenizer.json")
        conf = json.loads((path / "tokenizer_config.json").read_text(encoding="utf-8"))
        for role in ("cls", "sep", "pad", "bos", "eos", "unk"):
            token = conf.get(f"{role}_token")
            if isinstance(token, dict):
                token = token.get("content")
            setattr(self, f"{role}_token_id", self._tk.token_to_id(token) if token else None)

    @property
    def kind(self) -> str:
        """Which tokenizer encodes: the exact pruned copy (with the full one for rare texts) or the full one."""
        return "pruned copy (exact)" if self._tk.pruned else "full"

    def __call__(self, texts: Sequence[str], add_special_tokens: bool = False, truncation: bool = False) -> dict:
        if add_special_tokens or truncation:
            raise ValueError("LeanTokenizer encodes without special tokens and without truncation only")
        return {"input_ids": self._tk.encode(texts)}


class _uninitialised:
    """Build modules with empty meta tensors and no random initialisation (their weights are loaded
    next): initialising a 250k-token embedding, even on the meta device, costs seconds."""

    CLASSES = (nn.Embedding, nn.Linear, nn.LayerNorm)

    def __enter__(self) -> None:
        self.saved = {c: c.__dict__["reset_parameters"] for c in self.CLASSES}
        for c in self.CLASSES:
            c.reset_parameters = lambda self: None
        self.device = torch.device("meta")
        self.previous = torch.get_default_device()
        torch.set_default_device("meta")

    def __exit__(self, *exc: Any) -> None:
        torch.set_default_device(self.previous)
        for c, f in self.saved.items():
            c.reset_parameters = f


def lean_unsupported(path: str | Path) -> str | None:
    """Why the checkpoint at ``path`` cannot use the lean runtime (None: it can)."""
    path = Path(path)
    if not path.is_dir():
        return "not a local directory"
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        if not (path / name).is_file():
            return f"no {name}"
    conf = json.loads((path / "config.json").read_text(encoding="utf-8"))
    if conf.get("model_type") != "bert":
        return f"model_type {conf.get('model_type')!r}"
    if conf.get("position_embedding_type", "absolute") != "absolute":
        return "relative position embeddings"
    if conf.get("hidden_act", "gelu") != "gelu":
        return f"activation {conf.get('hidden_act')!r}"
    return None


def choose_runtime(path: str | Path) -> tuple[str, str]:
    """(runtime, why) for inference from the checkpoint at ``path``: ``POLICYCLF_RUNTIME`` wins."""
    wanted = os.environ.get("POLICYCLF_RUNTIME", "auto")
    if wanted not in RUNTIMES:
        from policyclf.errors import ConfigError

        raise ConfigError(f"POLICYCLF_RUNTIME={wanted!r}: expected one of {', '.join(RUNTIMES)}")
    if wanted == "transformers":
        return "transformers", "POLICYCLF_RUNTIME=transformers"
    why = lean_unsupported(path)
    if why is None:
        return "lean", "BERT checkpoint with tokenizer.json and safetensors"
    if wanted == "lean":
        from policyclf.errors import ModelError

        raise ModelError(f"POLICYCLF_RUNTIME=lean, but {path} cannot use it: {why}")
    return "transformers", f"lean runtime not applicable: {why}"


def load_lean(path: str | Path, layers: int = 0) -> tuple[LeanTokenizer, LeanBert]:
    """Tokenizer and encoder (bottom ``layers`` layers; 0 = all) of the checkpoint at ``path``.

    Tensors are read lazily from the safetensors file (memory-mapped) and only those the encoder needs.
    """
    from safetensors import safe_open

    path = Path(path)
    conf = json.loads((path / "config.json").read_text(encoding="utf-8"))
    cfg = SimpleNamespace(**{k: conf[k] for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                                                  "intermediate_size", "max_position_embeddings", "type_vocab_size")},
                          layer_norm_eps=conf.get("layer_norm_eps", 1e-12))
    if layers:
        cfg.num_hidden_layers = layers
    with _uninitialised():
        model = LeanBert(cfg)
    wanted = set(model.state_dict())
    state: dict[str, torch.Tensor] = {}
    with safe_open(str(path / "model.safetensors"), framework="pt") as f:
        for key in f.keys():
            name = key.removeprefix("bert.")
            if name in wanted:
                state[name] = f.get_tensor(key).float()
    missing = wanted - set(state)
    if missing:
        from policyclf.errors import ModelError

        raise ModelError(f"{path}: checkpoint lacks {len(missing)} encoder tensors (e.g. {sorted(missing)[0]})")
    model.load_state_dict(state, assign=True)
    model.eval()
    return LeanTokenizer(path), model


def run_lean_layers(model: LeanBert, layers: Sequence[nn.Module], hidden: torch.Tensor, mask: torch.Tensor) -> Any:
    attn = LeanBert.attention_mask(mask)
    for layer in layers:
        hidden = layer(hidden, attn)
    return hidden
