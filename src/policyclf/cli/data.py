from __future__ import annotations

from pathlib import Path

import typer

from policyclf.cli._util import data_app, handle_errors
from policyclf.labels import CATEGORIES


@data_app.command("check")
@handle_errors
def check_cli(
    corpus: str = typer.Option(None, "--corpus", help="corpus directory"),
    root: Path = typer.Option(None, "--root", help="repository root holding data/annotated (default: this checkout)"),
    complete: bool = typer.Option(False, "--complete", help="also fail unless every passage of the six-region pool is annotated"),
) -> None:
    """Validate all annotation files against the corpus and print counts per region × category."""
    from rich.console import Console
    from rich.table import Table

    from policyclf.corpus import check_annotations
    from policyclf.errors import DataError

    rep = check_annotations(root, corpus)
    console = Console(width=max(Console().width, 130))  # the pool × region × type table needs the width
    for name, n in sorted(rep.files.items()):
        console.print(f"{name}: {n} records OK")
    table = Table(title="final labels: passages per region × category")
    for col in ["region", "passages", *[str(i + 1) for i in range(len(CATEGORIES))], "none"]:
        table.add_column(col, justify="right")
    for region, c in sorted(rep.counts.items()):
        table.add_row(region, str(c["_n"]), *[str(c[k]) for k in CATEGORIES], str(c["_none"]))
    console.print(table)
    console.print("columns: " + ", ".join(f"{i + 1}={k}" for i, k in enumerate(CATEGORIES)))
    sources = Table(title="final labels: passages per pool × region × document type")
    for col in ["pool", "region", "type", "passages", *[str(i + 1) for i in range(len(CATEGORIES))], "none"]:
        sources.add_column(col, justify="right")
    for (pool, region, doc_type), c in rep.by_source.items():
        sources.add_row(pool, region, doc_type, str(c["_n"]), *[str(c[k]) for k in CATEGORIES], str(c["_none"]))
    console.print(sources)
    for pool, (done, total) in rep.coverage.items():
        console.print(f"coverage {pool}: {done}/{total} passages have a final record")
    if complete and rep.coverage.get("six_regions", (0, 1))[0] != rep.coverage.get("six_regions", (0, 1))[1]:
        raise DataError("the six-region pool is not fully annotated (see coverage above)")


@data_app.command("export")
@handle_errors
def export_cli(
    output: Path = typer.Option(..., "-o", "--output", help=".jsonl or .csv file, or a folder for --format hf"),
    fmt: str = typer.Option(None, "--format", help="jsonl, csv or hf (a datasets.DatasetDict); default: from -o"),
    corpus: str = typer.Option(None, "--corpus"),
    force: bool = typer.Option(False, "--force"),
) -> None:
    """Write annotations joined with corpus text (for reading or other tools; keep it outside the repository)."""
    from policyclf.export import export_annotations

    n = export_annotations(output, fmt, corpus=corpus, force=force)
    typer.echo(f"{n} annotated passages → {output}")


@data_app.command("agreement")
@handle_errors
def agreement_cli(
    coding_set: str = typer.Option("six_regions", "--set", help="six_regions (v1), pool (v2 rounds) or extension "
                                   "(v3 rounds): which double-coded/final/agreement files the defaults name"),
    double: Path = typer.Option(None, "--double", help="double-coded records (default: the set's, e.g. data/annotated/double_coded.jsonl)"),
    final: Path = typer.Option(None, "--final", help="final records (default: the set's, e.g. data/annotated/six_regions.jsonl)"),
    output: Path = typer.Option(None, "-o", "--output", help="default: the set's, e.g. data/annotated/agreement.json"),
    corpus: str = typer.Option(None, "--corpus"),
) -> None:
    """Inter-coder agreement (kappa, Krippendorff's alpha, MASI alpha) and the human ceiling."""
    from policyclf.corpus import CODING_SETS, annotations_dir, compute_agreement
    from policyclf.errors import PolicyclfError
    from policyclf.jsonutil import write_json

    if coding_set not in CODING_SETS:
        raise PolicyclfError(f"unknown --set {coding_set!r}; expected one of {', '.join(CODING_SETS)}")
    adir = annotations_dir()
    double_name, final_name, out_name = CODING_SETS[coding_set]
    result = compute_agreement(double or adir / double_name, final or adir / final_name, corpus)
    out = output or adir / out_name
    write_json(out, result)
    o = result["overall"]
    typer.echo(f"{o['passages']} double-coded passages: exact agreement {o['exact_agreement']:.3f}, "
               f"MASI alpha {o['masi_alpha']:.3f}, pooled kappa {o['pooled_cohen_kappa']:.3f}, "
               f"human-ceiling macro-F1 {o['human_ceiling_macro_f1']:.3f} → {out}")


@data_app.command("suggest")
@handle_errors
def suggest_cli(
    n: int = typer.Option(..., "-n", min=1, help="passages to pick"),
    output: Path = typer.Option(..., "-o", "--output", help="file for coders (.jsonl, or .json for label-studio)"),
    pool: str = typer.Option("six_regions_pool", "--pool", help="corpus pool to pick from (six_regions_pool, extension_pool)"),
    doc_type: str = typer.Option(None, "--doc-type", help="pick only passages of this document type (regulation, work_report)"),
    model: Path = typer.Option(None, "--model", help="model whose scores guide the picks (default: the shipped model)"),
    strategy: str = typer.Option("mixed", "--strategy", help="mixed, uncertainty, diversity or random"),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl, label-studio or doccano"),
    seed: int = typer.Option(0, "--seed"),
    exclude_picks: list[Path] = typer.Option([], "--exclude-picks", help="earlier *.picks.jsonl whose passages are still being coded"),
    heldout_report: Path = typer.Option(None, "--heldout-report", help="report.json whose held-out per-category F1 weights the uncertainty"),
    with_predictions: bool = typer.Option(False, "--with-predictions", help="label-studio only: add the model's labels as pre-annotations (never for gold data)"),
    corpus: str = typer.Option(None, "--corpus"),
    root: Path = typer.Option(None, "--root", help="repository root holding data/annotated (default: this checkout)"),
    force: bool = typer.Option(False, "--force"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Pick the next passages to code (active learning); the coders' file carries no model scores."""
    from collections import Counter

    from policyclf.active import suggest_to_files

    res = suggest_to_files(n, output, pool=pool, doc_type=doc_type, model_dir=model, strategy=strategy, fmt=fmt, seed=seed,
                           exclude_picks=exclude_picks, heldout_report=heldout_report,
                           with_predictions=with_predictions, corpus=corpus, root=root, force=force,
                           progress=not quiet)
    shares = Counter(p.strategy for p in res.picks)
    typer.echo(f"{len(res.picks)} of {res.candidates} uncoded passages picked ("
               + ", ".join(f"{k} {v}" for k, v in sorted(shares.items())) + f") → {res.output}; "
               f"reasons and scores → {res.picks_log}")


@data_app.command("import")
@handle_errors
def import_cli(
    input_file: Path = typer.Argument(..., metavar="FILE", help="an annotation tool's export"),
    fmt: str = typer.Option(..., "--format", help="label-studio (JSON export), doccano (JSONL export) or jsonl"),
    coder: str = typer.Option(..., "--coder", help="who coded the batch (stored in every record)"),
    output: Path = typer.Option(..., "-o", "--output", help="standoff records (.jsonl)"),
    allow_coded: bool = typer.Option(False, "--allow-coded", help="accept passages that already have a final record"),
    corpus: str = typer.Option(None, "--corpus"),
    root: Path = typer.Option(None, "--root", help="repository root holding data/annotated (default: this checkout)"),
    force: bool = typer.Option(False, "--force", help="overwrite OUTPUT"),
) -> None:
    """Turn a coded batch from Label Studio, doccano or JSONL into checked standoff records."""
    from policyclf.annotation_tools import import_to_file

    records = import_to_file(input_file, fmt, coder, output, corpus=corpus, root=root, force=force,
                             allow_coded=allow_coded)
    labelled = sum(1 for r in records if r["labels"])
    typer.echo(f"{len(records)} records ({labelled} with labels) from {input_file} → {output}")
