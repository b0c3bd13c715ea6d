"""Retraining on all gold data, compared with the current model before it may replace it.

``policyclf retrain CONFIG --against models/CURRENT -o models/NEW [--promote]`` trains on every
annotation file of the config, scores both models on the same held-out test (the unseen-province
set by default; never trained on), compares them with a paired document bootstrap overall and
per category, and writes the comparison into the new model's card and meta.json. With
``--promote`` the new model replaces the current one, but only when it is not significantly
worse (the 95 % interval of new − current macro-F1 reaches 0 or above).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.config import Config
from policyclf.corpus import load_examples, load_passages
from policyclf.errors import DataError, PolicyclfError
from policyclf.labels import CATEGORIES, labels_to_matrix
from policyclf.metrics import macro_f1, paired_bootstrap
from policyclf.model_card import write_model_card
from policyclf.models.base import load_model, read_meta
from policyclf.protocol import reusable_model
from policyclf.scoring import score_texts
from policyclf.training import (
    build_model,
    fit_examples,
    prepare_output_dir,
    save_model_atomic,
    training_examples,
    write_dir_atomic,
)


def _f1(y: np.ndarray, p: np.ndarray) -> float:
    tp = float((y & p).sum())
    denom = float(y.sum() + p.sum())
    return 0.0 if denom == 0 else 2 * tp / denom


def _display_path(path: Path) -> str:
    """``path`` relative to the project when inside it (model cards travel between machines)."""
    import os

    from policyclf.corpus import project_root

    resolved = Path(path).resolve()
    root = project_root().resolve()
    return os.path.relpath(resolved, root) if resolved.is_relative_to(root) else str(path)


def compare_models(current_dir: str | Path, new_dir: str | Path, test_file: str | Path, *,
                   corpus: str | None = None, n_boot: int = 1000, precision: str | None = None) -> dict[str, Any]:
    """Paired comparison of two model directories on one held-out annotation file.

    ``precision`` (e.g. ``"float32"``) scores both models in that precision instead of each one's
    own setting (``auto`` follows the CPU), so a comparison does not depend on the machine.

    Raises:
        DataError: the test file is missing or empty, or overlaps either model's training data.
    """
    test_file = Path(test_file)
    if not test_file.is_file():
        raise DataError(f"{test_file}: held-out annotation file not found")
    examples = load_examples([test_file], load_passages(corpus))
    if not examples:
        raise DataError(f"{test_file}: no annotated passages")
    y = labels_to_matrix([e.labels for e in examples]).astype(bool)
    docs = [e.passage.doc_id for e in examples]
    side: dict[str, dict[str, Any]] = {}
    preds = {}
    for name, d in (("current", current_dir), ("new", new_dir)):
        meta = read_meta(d)
        td = meta.get("training_data", {})
        if test_file.name in {Path(a).name for a in td.get("annotations", [])}:
            raise DataError(f"{d} was trained on {test_file.name}; compare on a held-out file")
        model = load_model(d, inference_dtype=precision) if precision else load_model(d)
        pred = score_texts(model, [e.text for e in examples], headings=[e.passage.heading for e in examples]) >= model.thresholds_
        preds[name] = pred
        side[name] = {"path": str(d), "passages": td.get("passages"), "fingerprint": td.get("fingerprint", ""),
                      "per_category": td.get("per_category"), "macro_f1": macro_f1(y, pred)}
    overall = paired_bootstrap(macro_f1, y, preds["new"], preds["current"], n_boot=n_boot, groups=docs)
    per_cat = {}
    for j, c in enumerate(CATEGORIES):
        def f1_j(t, p, j=j):
            return _f1(t[:, j], p[:, j])

        d = paired_bootstrap(f1_j, y, preds["new"], preds["current"], n_boot=n_boot, groups=docs)
        per_cat[c] = {"current": f1_j(y, preds["current"]), "new": f1_j(y, preds["new"]), **d}
    verdict = "significantly worse" if overall["hi"] < 0 else (
        "significantly better" if overall["lo"] > 0 else "no significant difference")
    return {"test": _display_path(test_file), "passages": len(examples), "unit": "documents", "current": side["current"],
            "new": side["new"], "macro_f1": overall, "per_category": per_cat, "verdict": verdict,
            "decision_agreement": float((preds["new"] == preds["current"]).mean())}


def relocate_config(source: Path, target: Path) -> None:
    """Rewrite ``target/config.toml`` (a copy of ``source``'s) so its relative paths hold from ``target``."""
    from policyclf.config import dump_config, load_config

    dump_config(load_config(Path(source) / "config.toml"), Path(target) / "config.toml")


def retrain(config: Config, against: str | Path, output: str | Path, *, promote: bool = False,
            force: bool = False, corpus: str | None = None, test_file: str | Path | None = None,
            reuse_models: Sequence[str | Path] = (), log: Callable[[str], None] = lambda message: None
            ) -> dict[str, Any]:
    """Train on all gold data, compare with ``against``, optionally promote; returns the comparison.

    ``reuse_models``: saved models (e.g. a report's ``--save-models`` unseen-split model, trained on the
    same passages) that stand in for the training run when :func:`policyclf.protocol.reusable_model`
    finds one identical in settings and training-data fingerprint; any other is refused, its reason
    sent to ``log`` before any training starts (and kept in ``comparison["reuse_refused"]``).

    Raises:
        PolicyclfError: an output that exists without ``force``, a missing current model, a reused
            model that is the output itself, or ``promote`` refused because the new model is
            significantly worse.
    """
    against, output = Path(against), Path(output)
    read_meta(against)
    if corpus is None and config.data.corpus:
        corpus = str(config.resolve(config.data.corpus))
    if against.resolve() == output.resolve():
        raise PolicyclfError("-o must differ from --against (use --promote to replace the current model)")
    if any(Path(d).resolve() == output.resolve() for d in reuse_models):
        raise PolicyclfError("--reuse-model must differ from -o (the reused model is copied to -o)")
    prepare_output_dir(output, force)
    examples = training_examples(config, corpus)
    reused, refused = None, {}
    for d in reuse_models:
        why = reusable_model(d, config, examples)
        if why is None:
            reused = Path(d)
            break
        refused[_display_path(Path(d))] = why
        log(f"not reusing {d}: {why}")
    if reused is not None:
        log(f"reusing {reused} (same settings and training data) instead of training")
        def copy_reused(tmp: Path) -> None:
            shutil.copytree(reused, tmp, dirs_exist_ok=True)
            relocate_config(reused, tmp)

        write_dir_atomic(output, copy_reused)
    else:
        model = fit_examples(build_model(config), examples)
        save_model_atomic(model, output, config, examples)
    test = Path(test_file) if test_file else config.resolve(config.report.test_annotations)
    comp = compare_models(against, output, test, corpus=corpus, n_boot=config.report.bootstrap)
    comp["reused_model"] = _display_path(reused) if reused is not None else None
    if refused:
        comp["reuse_refused"] = refused
    meta_path = output / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["comparison"] = comp
    if reused is not None:
        meta["reused_from"] = _display_path(reused)
    meta_path.write_text(json.dumps(meta, ensure_ascii=False, indent=2), encoding="utf-8")
    write_model_card(output, title=output.name)  # the card shows meta.json's comparison
    comp["promoted"] = False
    if promote:
        if comp["verdict"] == "significantly worse":
            raise PolicyclfError(f"not promoted: the new model is significantly worse than {against} "
                                 f"(macro-F1 {comp['macro_f1']['diff']:+.3f} [{comp['macro_f1']['lo']:+.3f}, "
                                 f"{comp['macro_f1']['hi']:+.3f}]); it stays at {output}")
        backup = against.with_name(f".{against.name}.replaced")
        shutil.rmtree(backup, ignore_errors=True)
        staged = against.with_name(f".{against.name}.staged")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(output, staged)
        relocate_config(output, staged)
        against.rename(backup)
        staged.rename(against)
        shutil.rmtree(backup, ignore_errors=True)
        comp["promoted"] = True
    return comp
