"""``analysis.html``: the self-contained page of ``analyze`` (tables plus matplotlib figures as PNG)."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import numpy as np

from policyclf.labels import CATEGORIES
from policyclf.report_html import _f, _fig_to_img, _table

STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em}"
         "table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:2px 6px;"
         "font-size:13px}th{background:#f3f3f3}img{max-width:100%}.note{color:#555;font-size:13px}")


def _ci(v: Any, lo: Any, hi: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return f"{v:.3f} [{lo:.3f}, {hi:.3f}]"


def _heatmap(report: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g["group"] for g in report["groups"]]
    idx = {(r["group"], r["category"]): r for r in report["prevalence"]}
    m = np.array([[idx[(g, c)]["corrected"] for c in CATEGORIES] for g in groups], dtype=float)
    fig, ax = plt.subplots(figsize=(1.2 * len(CATEGORIES) + 2, 0.45 * len(groups) + 1.6))
    im = ax.imshow(m, cmap="viridis", vmin=0, vmax=max(0.05, float(np.nanmax(m)) if np.isfinite(m).any() else 1))
    ax.set_xticks(range(len(CATEGORIES)), CATEGORIES, rotation=35, ha="right")
    ax.set_yticks(range(len(groups)), groups)
    for i in range(len(groups)):
        for j in range(len(CATEGORIES)):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", color="w" if m[i, j] < np.nanmax(m) * .6 else "k",
                        fontsize=8)
    fig.colorbar(im, ax=ax, label="corrected share")
    ax.set_title("corrected share per group × category")
    return _fig_to_img(fig)


def _raw_vs_corrected(report: dict[str, Any], with_gold: bool) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = [g["group"] for g in report["groups"]]
    idx = {(r["group"], r["category"]): r for r in report["prevalence"]}
    fig, axes = plt.subplots(1, len(CATEGORIES), figsize=(2.4 * len(CATEGORIES), 0.35 * len(groups) + 2.2),
                             sharey=True)
    y = np.arange(len(groups))
    series = [("raw", "raw", "tab:gray", -0.2), ("corrected", "corrected", "tab:blue", 0.0)]
    if with_gold:
        series.append(("gold_anchored", "gold", "tab:orange", 0.2))
    top = max([r[k] for r in report["prevalence"] for k in ("raw_hi", "corrected_hi", "gold_hi")
               if r.get(k) is not None and np.isfinite(r[k])] + [0.05])
    for ax, cat in zip(axes, CATEGORIES):
        for key, pre, color, dy in series:
            lo_key, hi_key = (f"{pre}_lo", f"{pre}_hi")
            v = np.array([idx[(g, cat)].get(key) if idx[(g, cat)].get(key) is not None else np.nan for g in groups],
                         dtype=float)
            lo = np.array([idx[(g, cat)].get(lo_key) if idx[(g, cat)].get(lo_key) is not None else np.nan
                           for g in groups], dtype=float)
            hi = np.array([idx[(g, cat)].get(hi_key) if idx[(g, cat)].get(hi_key) is not None else np.nan
                           for g in groups], dtype=float)
            err = np.vstack([np.clip(v - lo, 0, None), np.clip(hi - v, 0, None)])
            ax.errorbar(v, y + dy, xerr=err, fmt="o", ms=3, color=color, label=key, capsize=2)
        ax.set_title(cat, fontsize=8)
        ax.set_xlim(-0.01, min(1.0, top * 1.05) + 0.01)
        ax.grid(axis="x", alpha=.3)
    axes[0].set_yticks(y, groups)
    axes[0].invert_yaxis()
    axes[-1].legend(fontsize=7, loc="lower right")
    fig.suptitle("share per group: raw against corrected" + (" and gold-anchored" if with_gold else "")
                 + " (95 % intervals)")
    fig.tight_layout()
    return _fig_to_img(fig)


def _cooc_figure(cooc: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = np.array(cooc["p_col_given_row"], dtype=float)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(m, cmap="magma", vmin=0, vmax=1)
    ax.set_xticks(range(7), CATEGORIES, rotation=35, ha="right")
    ax.set_yticks(range(7), CATEGORIES)
    for i in range(7):
        for j in range(7):
            if np.isfinite(m[i, j]):
                ax.text(j, i, f"{m[i, j]:.2f}", ha="center", va="center", color="w" if m[i, j] < .6 else "k", fontsize=7)
    fig.colorbar(im, ax=ax, label="P(column | row)")
    ax.set_title("co-occurrence of the model's labels")
    return _fig_to_img(fig)


def write_analysis_html(report: dict[str, Any], path: Path, with_gold: bool) -> None:
    """Write ``analysis.html`` from the ``analysis.json`` dictionary."""
    s = report["settings"]
    parts = [f"<!doctype html><meta charset='utf-8'><title>{html.escape(report['title'])}</title>"
             f"<style>{STYLE}</style><h1>{html.escape(report['title'])}</h1>"]
    parts.append(f"<p class='note'>input {html.escape(str(s['input']))} ({html.escape(str(s['input_kind']))}); "
                 f"grouped by {html.escape(str(s['group_by'] or 'nothing (one group)'))}; unit: {s['unit']}; "
                 f"correction: {s['method'].upper()} (quapy) with the held-out error rates stored with "
                 f"{html.escape(str(s['model']))}"
                 + (f" (documents of type {html.escape(s['rates_doc_type'])})" if s["rates_doc_type"] else "")
                 + ("; each group's rates from the other groups' held-out documents" if s["rates_per_group"] else "")
                 + f"; {s['n_boot']} document-bootstrap resamples; seed {s['seed']}.</p>")
    if report["warnings"]:
        parts.append("<h2>Warnings</h2><ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in report["warnings"]) + "</ul>")
    parts.append("<h2>Groups</h2>" + _table(["group", "documents", "passages"],
                                            [[g["group"], g["n_docs"], g["n_passages"]] for g in report["groups"]]))
    parts.append("<h2>Corrected shares</h2>" + _heatmap(report))
    parts.append("<h2>Raw against corrected</h2>" + _raw_vs_corrected(report, with_gold))
    header = ["group", "category", "docs", "passages", "raw [95 % CI]", "corrected [95 % CI]"]
    if with_gold:
        header += ["gold-anchored [95 % CI]", "coded"]
    rows = []
    for r in report["prevalence"]:
        row = [r["group"], r["category"], r["n_docs"], r["n_passages"], _ci(r["raw"], r["raw_lo"], r["raw_hi"]),
               _ci(r["corrected"], r["corrected_lo"], r["corrected_hi"]) + (" (clipped)" if r["clipped"] else "")]
        if with_gold:
            row += [_ci(r.get("gold_anchored"), r.get("gold_lo"), r.get("gold_hi")), r.get("n_gold")]
        rows.append(row)
    parts.append("<h2>Prevalence</h2>" + _table(header, rows))
    parts.append("<p class='note'>raw: classify and count; corrected: adjusted classify and count with the held-out "
                 "TPR/FPR, clipped to [0, 1]; intervals: percentile bootstrap over documents (the corrected one also "
                 "resamples the held-out documents of the error rates)"
                 + ("; gold-anchored: prediction-powered inference (ppi_py) from the coded passages and all predictions"
                    if with_gold else "") + ".</p>")
    tests = report["tests"]
    parts.append("<h2>Do the groups differ?</h2>")
    if "overall" in tests:
        o = tests["overall"]
        trow = [["all categories", _f(o.get("chi2"), 1), _f(o.get("p_permutation")), "", _f(o.get("p_asymptotic")),
                 _f(o.get("cramers_v"))]]
        for cat, r in tests["per_category"].items():
            trow.append([cat, _f(r.get("chi2"), 1), _f(r.get("p_permutation")), _f(r.get("p_holm")),
                         _f(r.get("p_asymptotic")), _f(r.get("cramers_v"))])
        parts.append(_table(["scope", "chi-square", "p (permutation over documents)", "p (Holm)",
                             "p (chi-square table, passages independent)", "Cramér's V"], trow))
        parts.append(f"<p class='note'>{html.escape(tests['method'])} Table: {html.escape(o.get('table', ''))}.</p>")
        pw = report["pairwise"]
        prow = [[r["group_a"], r["group_b"], r["category"], _f(r["diff"]), f"[{_f(r['lo'])}, {_f(r['hi'])}]",
                 _f(r.get("p_holm")), _f(r["raw_diff"])] for r in pw["rows"]]
        parts.append("<h3>Pairwise differences of the corrected shares</h3>"
                     + _table(["group a", "group b", "category", "a − b", "interval (Bonferroni)", "p (Holm)",
                               "raw a − b"], prow)
                     + f"<p class='note'>{html.escape(pw['method'])}.</p>")
    else:
        parts.append(f"<p>{html.escape(tests.get('note', ''))}</p>")
    er = report["error_rates"]
    parts.append("<h2>Error rates used</h2>" + _table(
        ["category", "TPR", "FPR", "true positives / gold positives", "false positives / gold negatives"],
        [[c, _f(t["tpr"]), _f(t["fpr"]), f"{t['tp']} / {t['passages_pos']}", f"{t['fp']} / {t['passages_neg']}"]
         for c, t in er["totals"].items()]))
    parts.append(f"<p class='note'>{er['n_documents']} held-out documents, {er['n_passages']} passages: "
                 f"{html.escape(str(er['source'].get('note', '')))}; predictions "
                 f"{html.escape(', '.join(er['source'].get('predictions', [])))}; decisions: "
                 f"{html.escape(str(er['source'].get('decisions', '')))}.</p>")
    parts.append("<h2>Co-occurrence</h2>" + _cooc_figure(report["cooccurrence"])
                 + f"<p class='note'>{html.escape(report['cooccurrence']['note'])} "
                   f"({report['cooccurrence']['passages']} passages).</p>")
    parts.append(f"<h2>Evidence</h2><p class='note'>the highest-scoring labelled passages per group × category; "
                 f"excerpts and titles cut to {s['excerpt_chars']} characters.</p>")
    ev = report["evidence"]
    for g in report["groups"]:
        for cat in CATEGORIES:
            rows = [[e["document"], e["passage_id"], _f(e["score"]), e["excerpt"]] for e in ev
                    if e["group"] == g["group"] and e["category"] == cat]
            if rows:
                parts.append(f"<h3>{html.escape(g['group'])} · {cat}</h3>"
                             + _table(["document", "passage", "score", "excerpt"], rows))
    path.write_text("\n".join(parts) + "\n", encoding="utf-8")
