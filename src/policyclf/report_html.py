"""The self-contained HTML evaluation report: tables plus matplotlib figures embedded as PNG."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from policyclf.evaluation import BACKEND_NAMES, COMPARED_PAIRS
from policyclf.labels import CATEGORIES


def _fig_to_img(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="figure" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _f(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and x != x):
        return "—"
    return f"{x:.{digits}f}" if isinstance(x, float) else html.escape(str(x))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    """A table in a horizontally scrolling box: a wide one never runs off the page."""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_f(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<div class='scroll'><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"


def _ci(d: dict[str, Any]) -> str:
    return f"{d['value']:.3f} [{d['lo']:.3f}, {d['hi']:.3f}]"


def _figures(report: dict[str, Any], pooled: dict[str, Any]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figs: dict[str, str] = {}
    backends = list(report["backends"])
    if not backends:
        return figs
    # per-category F1 with intervals, against the human ceiling
    fig, ax = plt.subplots(figsize=(9, 3.6))
    x = np.arange(len(CATEGORIES))
    width = 0.8 / (len(backends) + 1)
    for k, b in enumerate(backends):
        pc = report["backends"][b]["loro"]["per_category"]
        vals = [pc[c]["f1"] for c in CATEGORIES]
        lo = [pc[c]["f1"] - pc[c]["f1_ci"]["lo"] for c in CATEGORIES]
        hi = [pc[c]["f1_ci"]["hi"] - pc[c]["f1"] for c in CATEGORIES]
        ax.bar(x + k * width, vals, width, yerr=[lo, hi], capsize=2, label=b)
    if "human_ceiling" in report:
        ax.bar(x + len(backends) * width, [report["human_ceiling"]["per_category"][c] for c in CATEGORIES], width,
               label="human ceiling", color="0.7")
    ax.set_xticks(x + width * len(backends) / 2, [str(i + 1) for i in range(len(CATEGORIES))])
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("F1 (leave-one-region-out)")
    ax.set_xlabel("category " + ", ".join(f"{i + 1}={c}" for i, c in enumerate(CATEGORIES[:4])) + ",\n"
                  + ", ".join(f"{i + 5}={c}" for i, c in enumerate(CATEGORIES[4:])))
    ax.legend(fontsize=8, ncol=3)
    figs["per_category"] = _fig_to_img(fig)
    # per-region macro-F1
    fig, ax = plt.subplots(figsize=(7, 3))
    regions = sorted({r for b in backends for r in report["backends"][b]["loro"]["per_region"]})
    for k, b in enumerate(backends):
        pr = report["backends"][b]["loro"]["per_region"]
        ax.bar(np.arange(len(regions)) + k * 0.8 / len(backends),
               [pr[r]["macro_f1"] if r in pr else np.nan for r in regions],
               0.8 / len(backends), label=b)
    ax.set_xticks(np.arange(len(regions)) + 0.4 - 0.4 / len(backends), regions)
    ax.set_ylabel("macro-F1 (held-out region)")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    figs["per_region"] = _fig_to_img(fig)
    # precision-recall curves
    fig, axes = plt.subplots(1, len(CATEGORIES), figsize=(16, 2.6), sharey=True)
    for j, cat in enumerate(CATEGORIES):
        for b in backends:
            cur = report["backends"][b]["pr_curves"][cat]
            if cur.get("precision"):
                axes[j].plot(cur["recall"], cur["precision"], label=f"{b} AP {cur['average_precision']:.2f}")
        axes[j].set_title(f"{j + 1} {cat}", fontsize=7)
        axes[j].set_xlabel("recall", fontsize=7)
        if axes[j].get_legend_handles_labels()[0]:
            axes[j].legend(fontsize=6)
    axes[0].set_ylabel("precision")
    figs["pr"] = _fig_to_img(fig)
    # reliability diagram
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--")
    for b in backends:
        cal = report["backends"][b]["calibration"]
        ax.plot([r["mean_score"] for r in cal["bins"]], [r["positive_rate"] for r in cal["bins"]], marker="o",
                label=f"{b} (ECE {cal['ece']:.3f})")
    ax.set_xlabel("mean predicted score")
    ax.set_ylabel("share of positives")
    ax.legend(fontsize=8)
    figs["calibration"] = _fig_to_img(fig)
    # label co-occurrence: gold and each backend
    mats = [("gold", np.array(report["cooccurrence_gold"]))] + [
        (b, np.array(report["backends"][b]["cooccurrence_predicted"])) for b in backends]
    fig, axes = plt.subplots(1, len(mats), figsize=(4 * len(mats), 3.6))
    for ax, (name, m) in zip(np.atleast_1d(axes), mats):
        ax.imshow(m, cmap="Blues")
        for i in range(m.shape[0]):
            for j in range(m.shape[1]):
                ax.text(j, i, str(m[i, j]), ha="center", va="center", fontsize=6)
        ax.set_title(name)
        ticks = range(len(CATEGORIES))
        ax.set_xticks(ticks, [str(i + 1) for i in ticks])
        ax.set_yticks(ticks, [str(i + 1) for i in ticks])
    figs["cooccurrence"] = _fig_to_img(fig)
    return figs


CSS = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}
.scroll{max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:.6em 0;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%}h2{margin-top:1.6em}
.note{color:#555;font-size:13px}"""
MIN_SUPPORT = 20  # fewer positives than this in a subset: its F1 is marked as resting on few cases


def curve_series(rows: list[dict[str, Any]], key: str) -> dict[str, dict[str, list[tuple[int, float, str]]]]:
    """Measured points (training passages, score, point name) of the learning curve per backend: each
    arm's line (the base point and the arm's own points, by training passages; only an arm with at least
    one point of its own has one) and, under "points", those on no line (the end point "all", and the
    base point of a backend none of whose arms was run)."""
    out: dict[str, dict[str, list[tuple[int, float, str]]]] = {}
    for backend in sorted({r["backend"] for r in rows}):
        mine = [r for r in rows if r["backend"] == backend and r.get(key) is not None]
        base = [r for r in mine if r["point"] == "base"]
        series: dict[str, list[tuple[int, float, str]]] = {}
        on_a_line = set()
        for arm in ("active", "random"):
            own = [r for r in mine if r["arm"] == arm]
            if own:
                pts = sorted(base + own, key=lambda r: r["passages"])
                series[arm] = [(r["passages"], r[key], r["point"]) for r in pts]
                on_a_line.update(id(r) for r in pts)
        series["points"] = sorted((r["passages"], r[key], r["point"]) for r in mine if id(r) not in on_a_line)
        out[backend] = series
    return out


def arms_not_run(rows: list[dict[str, Any]]) -> list[str]:
    """'backend arm' for each learning-curve arm with no measured point of its own."""
    return [f"{b} {arm}" for b in sorted({r["backend"] for r in rows}) for arm in ("active", "random")
            if not any(r["backend"] == b and r["arm"] == arm for r in rows)]


def _curve_figure(rows: list[dict[str, Any]]) -> str:
    """Measured points only: an arm's points joined by a line, points on no arm unjoined; an arm that
    was not run is named in the legend, never drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10.5, 3.8))
    colours = {b: f"C{k}" for k, b in enumerate(sorted({r["backend"] for r in rows}))}
    missing = arms_not_run(rows)
    for ax, key, title in ((axes[0], "loro_macro_f1", "leave-one-region-out"),
                           (axes[1], "unseen_macro_f1", "unseen provinces")):
        for backend, series in curve_series(rows, key).items():
            c = colours[backend]
            if "active" in series:
                xs, ys, _ = zip(*series["active"])
                ax.plot(xs, ys, "-o", color=c, label=f"{backend}, active arm")
            if "random" in series:  # drawn over the active arm, hollow, so that both stay visible
                xs, ys, _ = zip(*series["random"])
                ax.plot(xs, ys, "--s", color=c, markerfacecolor="white", markersize=8, zorder=3,
                        markevery=list(range(1, len(xs))), label=f"{backend}, random arm")  # base: the active arm's marker
            if series["points"]:
                xs, ys, names = zip(*series["points"])
                gone = [m.split()[1] for m in missing if m.split()[0] == backend]
                label = (f"{backend}, " + " and ".join({"base": "v1 data", "all": "all rounds"}.get(n, n) for n in names)
                         + (f" ({' and '.join(gone)} arm{'s' if len(gone) > 1 else ''} not run)" if gone else ""))
                ax.plot(xs, ys, "D", color=c, markerfacecolor="white", markersize=7, linestyle="none", zorder=3,
                        label=label)
        ax.set_title(title)
        ax.set_xlabel("coded six-region passages (training)")
        ax.set_ylabel("macro-F1")
        ax.grid(alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1 + 0.04 * ((len(labels) + 1) // 2), 1, 1))
    return _fig_to_img(fig)


def _doc_type_tables(per_doc_type: dict[str, Any]) -> str:
    """Per document type: the summary row (with the categories resting on few positives) and, per
    category, precision, recall, F1 and its support (positives of that type)."""
    types = list(per_doc_type)
    summary = _table(["type", "passages", "macro-F1", "micro-F1", "unlabelled kept unlabelled",
                      f"categories with < {MIN_SUPPORT} positives"], [
        [t, v["n"], v["macro_f1"], v["micro_f1"], v["empty_correct"],
         ", ".join(f"{c} ({v['per_category'][c]['support']})" for c in CATEGORIES
                   if v.get("per_category", {}).get(c, {}).get("support", MIN_SUPPORT) < MIN_SUPPORT) or "none"]
        for t, v in per_doc_type.items()])
    if not all("per_category" in v for v in per_doc_type.values()):
        return summary
    header = ["category"] + [f"{t} {m}" for t in types for m in ("precision", "recall", "F1", "positives")]
    rows = []
    for c in CATEGORIES:
        row: list[Any] = [c]
        for t in types:
            v = per_doc_type[t]["per_category"][c]
            few = v["support"] < MIN_SUPPORT
            row += [v["precision"], v["recall"], _f(v["f1"]) + (" *" if few else ""), v["support"]]
        rows.append(row)
    return (summary + _table(header, rows)
            + f"<p class='note'>positives = passages of that type that carry the category (the F1's support); "
              f"* F1 over fewer than {MIN_SUPPORT} positives: a handful of passages decides it. The macro-F1 above "
              "averages all seven categories.</p>")


def write_html(report: dict[str, Any], pooled: dict[str, Any], path: Path, headline_md: str) -> None:
    """Write ``report.html`` (opens offline; every figure is embedded); ``headline_md`` is README's table."""
    figs = _figures(report, pooled)
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>policyclf evaluation report</title>"
             f"<style>{CSS}</style></head><body>",
             "<h1>policyclf evaluation report</h1>",
             f"<p class='note'>Created {html.escape(report['created'])}. Six-region passages: "
             f"{report['data']['six_regions_passages']}; unseen-province passages: {report['data']['unseen_passages']}; "
             f"annotations fingerprint {report['data']['annotations_fingerprint'][:12]}. Intervals are 95 % percentile "
             f"bootstraps over {report['protocol']['bootstrap']} resamples (passages; documents where stated).</p>",
             "<h2>Headline</h2>"]
    rows = [[r["backend"], r["test"], r["n"], r["macro_f1"], r.get("macro_f1_lo"), r.get("macro_f1_hi"),
             r.get("micro_f1"), r.get("sample_f1")] for r in report["headline"]]
    parts.append(_table(["model", "test set", "passages", "macro-F1", "95% lo", "95% hi", "micro-F1", "sample-F1"], rows))
    for a_name, b_name in COMPARED_PAIRS:
        for split, title in (("loro", "leave-one-region-out"), ("unseen", "unseen provinces")):
            comp = report["comparison"].get(f"{split}_macro_f1_{a_name}_minus_{b_name}")
            if comp:
                parts.append(f"<p>{BACKEND_NAMES[a_name]} − {BACKEND_NAMES[b_name]} macro-F1, {title}: " + "; ".join(
                    f"{unit} bootstrap {c['diff']:+.3f} [{c['lo']:+.3f}, {c['hi']:+.3f}], p = {c['p_value']:.3f}"
                    for unit, c in comp.items()) + "</p>")
    for b, data in report["backends"].items():
        lo = data["loro"]
        pooled_over = ("pooled over the held-out regions" if not lo.get("missing_regions") else
                       f"{', '.join(lo['per_region'])} only; not yet: {', '.join(lo['missing_regions'])}")
        parts.append(f"<h2>{html.escape(b)}: leave-one-region-out ({html.escape(pooled_over)})</h2>")
        ci = lo["ci_passages"]
        cid = lo.get("ci_documents", {})
        parts.append(_table(["metric", "value [95% CI, passages]", "[95% CI, documents]"], [
            ["macro-F1", _ci(ci["macro_f1"]), _ci(cid["macro_f1"]) if cid else None],
            ["micro-F1", _ci(ci["micro_f1"]), _ci(cid["micro_f1"]) if cid else None],
            ["sample-F1", _ci(ci["sample_f1"]), None],
            ["subset accuracy", lo["subset_accuracy"], None], ["Hamming loss", lo["hamming_loss"], None],
            ["unlabelled passages left unlabelled", lo["empty_correct"], None]]))
        hc = report.get("human_ceiling", {}).get("per_category", {})
        parts.append(_table(["category", "precision", "recall", "F1", "F1 95% CI", "support", "human ceiling F1"], [
            [c, v["precision"], v["recall"], v["f1"], f"[{v['f1_ci']['lo']:.3f}, {v['f1_ci']['hi']:.3f}]",
             v["support"], hc.get(c)] for c, v in lo["per_category"].items()]))
        parts.append("<h3>Per held-out region</h3>")
        parts.append(_table(["region", "passages", "macro-F1", "micro-F1", "sample-F1"], [
            [r, v["n"], v["macro_f1"], v["micro_f1"], v["sample_f1"]] for r, v in lo["per_region"].items()]))
        parts.append("<h3>Per document type</h3>")
        parts.append(_doc_type_tables(lo["per_doc_type"]))
        if "unseen" in data:
            un = data["unseen"]
            parts.append(f"<h2>{html.escape(b)}: unseen provinces (trained on all six regions)</h2>")
            parts.append(_table(["metric", "value [95% CI, passages]"], [
                ["macro-F1", _ci(un["ci_passages"]["macro_f1"])], ["micro-F1", _ci(un["ci_passages"]["micro_f1"])],
                ["sample-F1", _ci(un["ci_passages"]["sample_f1"])], ["subset accuracy", un["subset_accuracy"]],
                ["unlabelled passages left unlabelled", un["empty_correct"]]]))
            parts.append(_table(["category", "precision", "recall", "F1", "support"], [
                [c, v["precision"], v["recall"], v["f1"], v["support"]] for c, v in un["per_category"].items()]))
            parts.append(_table(["province", "passages", "macro-F1", "micro-F1"], [
                [r, v["n"], v["macro_f1"], v["micro_f1"]] for r, v in un["per_province"].items()]))
    titles = {"per_category": "Per-category F1 (leave-one-region-out) against the human ceiling",
              "per_region": "Macro-F1 per held-out region", "pr": "Precision–recall curves (leave-one-region-out)",
              "calibration": "Calibration: reliability diagram over all passage × category scores",
              "cooccurrence": "Label co-occurrence: gold and predicted (leave-one-region-out)"}
    for key, img in figs.items():
        parts.append(f"<h2>{titles[key]}</h2>{img}")
    for b, data in report["backends"].items():
        parts.append(f"<h2>Worst errors: {html.escape(b)}</h2><p class='note'>The most confident wrong decisions "
                     "(passage ids and scores only; look the text up with <code>policyclf data export</code>).</p>")
        parts.append(_table(["passage", "region", "category", "error", "score", "threshold"], [
            [e["passage_id"], e["region"], e["category"], e["error"], e["score"], e["threshold"]]
            for e in data["worst_errors"]]))
    if report.get("learning_curve"):
        curve = report["learning_curve"]
        missing = arms_not_run(curve)
        parts.append("<h2>Learning curve: active learning against random picks</h2>")
        parts.append("<p class='note'>Each point trains on the v1 six-region set plus the pool rounds named; "
                     "leave-one-region-out is always scored on the same v1 passages. Only measured points are "
                     "drawn: a line joins the points of one arm (the base point and that arm's rounds); "
                     "'all' (every round, active and random: the main protocol) stands on no arm."
                     + (f" Not run: {', '.join(missing)} arm{'s' if len(missing) > 1 else ''}." if missing else "")
                     + "</p>")
        parts.append(_curve_figure(curve))
        parts.append(_table(["point", "arm", "model", "training passages", "LORO macro-F1", "unseen macro-F1"], [
            [r["point"], r["arm"], r["backend"], r["passages"], r["loro_macro_f1"], r.get("unseen_macro_f1")]
            for r in curve]))
        # per category: one column per point (rows = categories keeps the table narrow), next to the support
        loro_support = next((b["loro"]["per_category"] for b in report["backends"].values()), {})
        parts.append("<p class='note'>Leave-one-region-out F1 per category at each point (the same test passages "
                     "at every point, so one support column).</p>")
        breakable = "+\u200b"  # a point name such as al1+al2+al3 may wrap after each '+'
        parts.append(_table(["category", "positives", *[f"{r['point'].replace('+', breakable)} ({r['backend']})"
                                                       for r in curve]], [
            [c, loro_support.get(c, {}).get("support"), *[r["loro_per_category"][c] for r in curve]]
            for c in CATEGORIES]))
    if report.get("learning_curve_comparison"):
        parts.append("<h2>v1 → v2 data: the end point against the base point</h2><p class='note'>Same recipe and "
                     "test passages; only the training data differ (base = v1 six-region set, end = every coding "
                     "round). Differences with paired document-bootstrap 95 % intervals.</p>")
        parts.append(_table(["model", "test", "passages", "base (v1 data)", "all rounds (v2 data)", "difference",
                             "95 % CI", "p"], [
            [r["backend"], r["test"], r["n"], r["base_macro_f1"], r["end_macro_f1"], r["diff"],
             f"[{r['lo']:+.3f}, {r['hi']:+.3f}]", r["p_value"]] for r in report["learning_curve_comparison"]]))
    parts.append("<h2>Model card section</h2><pre>" + html.escape(report["model_card"]) + "</pre>")
    parts.append("<h2>Headline (Markdown, as in README)</h2><pre>" + html.escape(headline_md) + "</pre>")
    parts.append("</body></html>")
    path.write_text("\n".join(parts), encoding="utf-8")
