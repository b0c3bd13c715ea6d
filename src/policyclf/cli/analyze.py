from __future__ import annotations

import warnings
from pathlib import Path

import typer

from policyclf.cli._util import app, handle_errors


@app.command("analyze")
@handle_errors
def analyze_cli(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="a 'label' output folder or a 'predict' .jsonl"),
    output: Path = typer.Option(..., "-o", "--output", help="output folder"),
    group_by: str = typer.Option(None, "--group-by", help="a --metadata column, 'folder' (first folder level of a "
                                 "label folder) or a field of the rows; default: one group"),
    metadata: Path = typer.Option(None, "--metadata", help="CSV with a 'doc' or 'passage_id' column, then any "
                                  "columns (region, year, doc_type; 'title' names documents)"),
    model: Path = typer.Option(None, "--model", help="model whose held-out error rates correct the shares "
                               "(default: the model that made the labels, else the default model)"),
    gold: Path = typer.Option(None, "--gold", help="coded passages of the same collection (standoff .jsonl: "
                              "passage_id, labels) → gold-anchored estimates"),
    unit: str = typer.Option("passage", "--unit", help="passage or document"),
    method: str = typer.Option("acc", "--method", help="acc (decisions) or pacc (mean scores; passage unit)"),
    texts: Path = typer.Option(None, "--texts", help="passage texts for the evidence excerpts: the passage .jsonl "
                               "given to predict, or the folder given to label"),
    excerpt_chars: int = typer.Option(80, "--excerpt-chars", help="longest evidence excerpt and document title"),
    evidence: int = typer.Option(5, "--evidence", help="evidence passages per group × category"),
    n_boot: int = typer.Option(1000, "--n-boot", help="document-bootstrap resamples"),
    n_perm: int = typer.Option(2000, "--n-perm", help="permutations of the group-difference tests"),
    rates_doc_type: str = typer.Option(None, "--rates-doc-type", help="correct with the held-out error rates of "
                                       "one document type (regulation or work_report)"),
    seed: int = typer.Option(0, "--seed"),
    force: bool = typer.Option(False, "--force", help="overwrite the outputs in OUT_DIR"),
) -> None:
    """Category prevalence per group: raw, corrected for the model's held-out errors, gold-anchored; tests; evidence."""
    from policyclf.analysis import AnalysisWarning, analyze

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AnalysisWarning)  # printed below, once each
        res = analyze(input_path, output, group_by=group_by, metadata=metadata, model_dir=model, gold=gold, unit=unit,
                      method=method, texts=texts, excerpt_chars=excerpt_chars, evidence=evidence, n_boot=n_boot,
                      n_perm=n_perm, seed=seed, rates_doc_type=rates_doc_type, force=force)
    for note in res.warnings:
        typer.echo(f"warning: {note}", err=True)
    groups = res.report["groups"]
    typer.echo(f"{len(groups)} group(s), {sum(g['n_docs'] for g in groups)} documents, "
               f"{sum(g['n_passages'] for g in groups)} passages → {res.out_dir}/prevalence.csv, prevalence.xlsx, "
               "analysis.json, analysis.html")
