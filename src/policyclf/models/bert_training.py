"""Fine-tuning a :class:`~policyclf.models.bert.BertClassifier`: the training loop, cross-fitted
thresholds, early stopping and end-of-epoch checkpoints (kept apart from the model, as setfit
keeps its trainer apart from its model).

The model supplies the forward computations (frozen-layer cache, windows, logits); this module
decides what is trained, in what order, for how long, and how a killed run resumes.
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from policyclf.errors import ModelError
from policyclf.labels import labels_to_matrix
from policyclf.thresholds import tune_thresholds


def fit(model: Any, texts: Sequence[str], labels: Sequence[Sequence[str]],
        groups: Sequence[str] | None = None, headings: Sequence[str] | None = None) -> Any:
    """Fine-tune on passages and set per-category thresholds.

    With ``threshold_folds`` ≥ 2 (cross-fitting): every passage is trained on, for exactly
    ``epochs`` epochs; thresholds are tuned on out-of-fold scores of ``threshold_folds``
    models fitted the same way on the other folds (documents kept in one fold). Otherwise
    (``threshold_folds`` = 0, the v1 recipe): a random ``validation_fraction`` is held out
    for early stopping and threshold tuning.
    """
    heads = list(headings) if headings is not None else [""] * len(texts)
    if model.threshold_folds < 2:
        return model._fit_core(texts, labels, holdout=True, headings=heads)
    from sklearn.model_selection import GroupKFold

    texts = list(texts)
    y = labels_to_matrix(labels, model.labels)
    groups = list(groups) if groups is not None else [str(i) for i in range(len(texts))]
    folds = min(model.threshold_folds, len(set(groups)))
    oof = np.zeros(y.shape)
    for k, (tr, te) in enumerate(GroupKFold(n_splits=folds).split(texts, groups=groups)):
        inner = type(model)(**{**model.params(), "threshold_folds": 0, "seed": model.seed + 1 + k},
                               device=model.device, progress=model.progress)
        inner._fit_core([texts[i] for i in tr], [list(labels[i]) for i in tr], holdout=False,
                        headings=[heads[i] for i in tr])
        oof[te] = inner.predict_proba([texts[i] for i in te], [heads[i] for i in te])
        del inner
    model._fit_core(texts, labels, holdout=False, headings=heads)
    model.thresholds_ = tune_thresholds(y, oof)
    from policyclf.metrics import macro_f1, micro_f1

    pred = oof >= model.thresholds_
    model.validation_ = {**model.validation_,
                        "method": f"{folds}-fold cross-fitting (grouped by document): thresholds tuned on "
                                  "out-of-fold scores; the model trains on every passage for a fixed number of "
                                  "epochs (figures below are optimistic: thresholds tuned on the same scores)",
                        "macro_f1": macro_f1(y, pred), "micro_f1": micro_f1(y, pred)}
    return model


def fit_core(model: Any, texts: Sequence[str], labels: Sequence[Sequence[str]], holdout: bool,
              headings: Sequence[str] | None = None, targets: np.ndarray | None = None,
              n_gold: int | None = None, sources: Sequence[int] | None = None) -> Any:
    """One fine-tuning run; with ``holdout``, early stopping and thresholds on a random split.

    ``targets`` (n, 7 probabilities) replaces the 0/1 labels as the training target (soft
    targets of a teacher; the positive weighting is then off, since the targets already carry
    the teacher's scale). Only the first ``n_gold`` passages (default all) have gold labels:
    the validation split is drawn from them and thresholds are tuned on their gold labels.
    ``sources`` gives, for each of the other inputs, the gold passage it was cut from: an input
    cut from a validation passage is not trained on, so the validation split stays unseen.
    """
    from tqdm import tqdm
    from transformers import get_linear_schedule_with_warmup

    texts = list(texts)
    if len(texts) < 4:
        raise ModelError("need at least 4 training passages")
    torch.manual_seed(model.seed)
    np.random.seed(model.seed)
    if model.device == "cpu" or not torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
    model._build()
    precision = {"training_precision": model.training_precision_,
                 "training_precision_reason": model.training_precision_reason_}
    n_gold = len(texts) if n_gold is None else n_gold
    gold = labels_to_matrix([list(l) for l in labels[:n_gold]], model.labels).astype(np.float32)
    if targets is not None:
        if targets.shape != (len(texts), len(model.labels)):
            raise ModelError(f"targets of shape {targets.shape}, expected {(len(texts), len(model.labels))}")
        y = np.asarray(targets, dtype=np.float32)
    else:
        y = gold
    rng = np.random.default_rng(model.seed)
    order = rng.permutation(n_gold)
    n_val = max(1, int(round(model.validation_fraction * n_gold))) if holdout else 0
    val_idx = np.sort(order[:n_val])
    extra = np.arange(n_gold, len(texts))
    if sources is not None:
        if len(sources) != len(extra):
            raise ModelError(f"{len(sources)} sources for {len(extra)} inputs beyond the gold passages")
        extra = extra[~np.isin(np.asarray(sources, dtype=int), val_idx)]
    train_idx = np.sort(np.concatenate([order[n_val:], extra])).astype(int)

    windows, owner = model._windows(texts, headings)
    cached = model._cache_bottom(windows)
    by_passage: list[list[int]] = [[] for _ in texts]
    for w, p in enumerate(owner):
        by_passage[p].append(w)

    pos = y[train_idx].sum(0)
    neg = len(train_idx) - pos
    weights = np.clip(neg / np.maximum(pos, 1), 1.0, model.max_pos_weight) if targets is None else np.ones(len(pos))
    pos_weight = torch.tensor(weights, dtype=torch.float32, device=model.device_)
    prior = np.clip(pos / len(train_idx), 1e-3, 1 - 1e-3)
    with torch.no_grad():
        model.head_[1].bias.copy_(torch.tensor(np.log(prior / (1 - prior)), dtype=torch.float32))
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    layers = model.encoder_.encoder.layer
    top_params = [p for layer in layers[model.split_:] for p in layer.parameters()]
    param_groups = []
    for i in range(model.split_, len(layers)):  # layer-wise decay: lower layers learn more slowly
        lr = model.learning_rate * model.layer_lr_decay ** (len(layers) - 1 - i)
        params = list(layers[i].parameters())
        param_groups += [{"params": [p for p in params if p.ndim > 1], "lr": lr, "weight_decay": model.weight_decay},
                         {"params": [p for p in params if p.ndim == 1], "lr": lr, "weight_decay": 0.0}]
    param_groups.append({"params": list(model.head_.parameters()), "lr": model.head_learning_rate, "weight_decay": 0.0})
    optim = torch.optim.AdamW(param_groups)
    steps_per_epoch = math.ceil(len(train_idx) / model.batch_size)
    total = steps_per_epoch * model.epochs
    sched = get_linear_schedule_with_warmup(optim, int(model.warmup_ratio * total), total)

    best_loss, best_state, bad_epochs, history = math.inf, None, 0, []
    best_val_scores = None
    started = time.time()
    bar = tqdm(total=total, desc="fine-tuning", unit="step", disable=not model.progress, file=sys.stderr)
    ckpt = model._checkpoint_path(texts, y, headings, holdout, n_gold, train_idx if sources is not None else None)
    start_epoch = 0
    saved = model._read_checkpoint(ckpt) if ckpt is not None else None
    if saved is not None:  # a run killed after some epochs: continue after the last one
        model._load_trained_state(saved["model"])
        optim.load_state_dict(saved["optim"])
        sched.load_state_dict(saved["sched"])
        rng.bit_generator.state = saved["rng"]
        torch.set_rng_state(saved["torch_rng"])
        best_loss, best_state, bad_epochs = saved["best_loss"], saved["best_state"], saved["bad_epochs"]
        history, start_epoch = saved["history"], saved["epoch"]
        best_val_scores = None if saved["best_val_scores"] is None else saved["best_val_scores"].numpy()
        bar.update(start_epoch * steps_per_epoch)
        import logging

        logging.getLogger("policyclf").info("resuming fine-tuning after epoch %d from %s", start_epoch, ckpt)
    for epoch in range(start_epoch, model.epochs):
        model.encoder_.train()
        model.head_.train()
        batches = length_batches(train_idx, by_passage, windows, rng, model.batch_size)
        epoch_loss = 0.0
        for batch in batches:
            logits = model._passage_logits(batch, by_passage, cached)
            loss = loss_fn(logits, torch.from_numpy(y[batch]).to(model.device_))
            optim.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(top_params + list(model.head_.parameters()), 1.0)
            optim.step()
            sched.step()
            epoch_loss += loss.item() * len(batch)
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
        if not holdout:  # fixed epochs, every passage trained on
            history.append({"epoch": epoch + 1, "train_loss": epoch_loss / len(train_idx)})
        else:
            val_logits = model._eval_logits(val_idx, by_passage, cached)
            val_loss = float(loss_fn(val_logits, torch.from_numpy(y[val_idx]).to(model.device_)))
            history.append({"epoch": epoch + 1, "train_loss": epoch_loss / len(train_idx), "val_loss": val_loss})
            if val_loss < best_loss - 1e-4:
                best_loss, bad_epochs = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in model._trained_state().items()}
                best_val_scores = torch.sigmoid(val_logits).float().cpu().numpy()
            else:
                bad_epochs += 1
                if bad_epochs >= model.patience:
                    break
        if ckpt is not None and epoch + 1 < model.epochs:
            model._save_checkpoint(ckpt, {
                "epoch": epoch + 1, "model": model._trained_state(), "optim": optim.state_dict(),
                "sched": sched.state_dict(), "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "best_loss": best_loss, "best_state": best_state, "bad_epochs": bad_epochs, "history": history,
                "best_val_scores": None if best_val_scores is None else torch.from_numpy(best_val_scores)})
    bar.close()
    if ckpt is not None:
        ckpt.unlink(missing_ok=True)
    if not holdout:
        model.thresholds_ = np.full(len(model.labels), 0.5)
        model.validation_ = {"method": f"no hold-out: {model.epochs} epochs on all {len(train_idx)} passages",
                            "history": history, "train_seconds": round(time.time() - started, 1), **precision}
        model.encoder_.eval()
        model.head_.eval()
        del cached
        return model
    if best_state is None:
        raise ModelError("training failed: the validation loss was never finite (NaN or inf) in "
                         f"{len(history)} epoch(s); lower training.learning_rate or check the data")
    model._load_trained_state(best_state)
    model.thresholds_ = tune_thresholds(gold[val_idx], best_val_scores)
    from policyclf.metrics import macro_f1, micro_f1

    pred = best_val_scores >= model.thresholds_
    model.validation_ = {
        "method": f"random {len(val_idx)}-passage validation split (thresholds tuned on it: optimistic)",
        "macro_f1": macro_f1(gold[val_idx], pred), "micro_f1": micro_f1(gold[val_idx], pred),
        "best_val_loss": best_loss, "history": history, "train_seconds": round(time.time() - started, 1),
        "trained_inputs": len(train_idx), **precision,
    }
    model.encoder_.eval()
    model.head_.eval()
    del cached
    return model


def checkpoint_path(model: Any, texts: Sequence[str], y: np.ndarray, headings: Sequence[str] | None, holdout: bool,
                     n_gold: int, train_idx: np.ndarray | None = None) -> Path | None:
    """Where this exact fine-tuning run keeps its end-of-epoch checkpoint (``$POLICYCLF_CACHE/checkpoints``).

    The key covers the settings, the passages, their targets and headings; the file is deleted
    when the run finishes. ``POLICYCLF_CHECKPOINTS=0`` turns checkpoints off.
    """
    import hashlib
    import os

    if os.environ.get("POLICYCLF_CHECKPOINTS", "1") in ("0", ""):
        return None
    from policyclf.models.base_model import cache_dir

    key = {k: v for k, v in model.params().items()
           if k not in ("inference_dtype", "inference_batch_size", "inference_batch_tokens", "num_threads",
                        "training_precision")}
    if model.training_precision_ != "float32":  # the precision in use; float32 runs keep their earlier keys
        key["training_precision"] = model.training_precision_
    h = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode())
    h.update(json.dumps([list(texts), list(headings or []), holdout, n_gold], ensure_ascii=False).encode())
    h.update(np.ascontiguousarray(y, dtype=np.float32).tobytes())
    if train_idx is not None:  # inputs left out of training (cut from validation passages)
        h.update(np.ascontiguousarray(train_idx, dtype=np.int64).tobytes())
    return cache_dir() / "checkpoints" / f"fit-{h.hexdigest()[:20]}.pt"


def read_checkpoint(model: Any, path: Path) -> dict[str, Any] | None:
    """The saved end-of-epoch state at ``path``, or None if there is none or it cannot be read
    as tensors and plain values only (it is never unpickled as arbitrary objects)."""
    if not path.is_file():
        return None
    try:
        return torch.load(path, map_location=getattr(model, "device_", "cpu"), weights_only=True)
    except Exception as exc:  # a truncated file, or one written by an older policyclf
        import logging

        logging.getLogger("policyclf").warning("ignoring unreadable checkpoint %s (%s); training from the start",
                                               path, str(exc).splitlines()[0][:120])
        return None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


def length_batches(idx: np.ndarray, by_passage, windows, rng, batch_size: int) -> list[np.ndarray]:
    """Shuffled batches of passages of similar length (less padding, same randomness per seed)."""
    lengths = np.array([sum(len(windows[w]) for w in by_passage[p]) for p in idx], dtype=float)
    noisy = lengths * rng.uniform(0.9, 1.1, len(idx))
    sorted_idx = idx[np.argsort(noisy)]
    batches = [sorted_idx[s:s + batch_size] for s in range(0, len(sorted_idx), batch_size)]
    rng.shuffle(batches)
    return batches
