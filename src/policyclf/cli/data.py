from __future__ import annotations

import json
from pathlib import Path

import typer

from policyclf.cli import data_app, handle_errors
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
    console = Console()
    for name, n in sorted(rep.files.items()):
        console.print(f"{name}: {n} records OK")
    table = Table(title="final labels: passages per region × category")
    for col in ["region", "passages", *[str(i + 1) for i in range(len(CATEGORIES))], "none"]:
        table.add_column(col, justify="right")
    for region, c in sorted(rep.counts.items()):
        table.add_row(region, str(c["_n"]), *[str(c[k]) for k in CATEGORIES], str(c["_none"]))
    console.print(table)
    console.print("columns: " + ", ".join(f"{i + 1}={k}" for i, k in enumerate(CATEGORIES)))
    for pool, (done, total) in rep.coverage.items():
        console.print(f"coverage {pool}: {done}/{total} passages have a final record")
    if complete and rep.coverage.get("six_regions", (0, 1))[0] != rep.coverage.get("six_regions", (0, 1))[1]:
        raise DataError("the six-region pool is not fully annotated (see coverage above)")


@data_app.command("export")
@handle_errors
def export_cli(
    output: Path = typer.Option(..., "-o", "--output", help=".jsonl or .csv"),
    corpus: str = typer.Option(None, "--corpus"),
    force: bool = typer.Option(False, "--force"),
) -> None:
    """Write annotations joined with corpus text (for reading; keep it outside the repository)."""
    import csv

    from policyclf.corpus import FINAL_FILES, annotations_dir, load_examples, load_passages
    from policyclf.errors import PolicyclfError

    if output.exists() and not force:
        raise PolicyclfError(f"{output} already exists; pass --force to overwrite it")
    passages = load_passages(corpus)
    adir = annotations_dir()
    examples = load_examples([adir / f for f in FINAL_FILES if (adir / f).is_file()], passages)
    rows = [{"passage_id": e.passage_id, "doc_id": e.passage.doc_id, "region": e.passage.region,
             "doc_type": e.passage.doc_type, "pool": e.passage.pool, "seq": e.passage.seq,
             "heading": e.passage.heading, "labels": list(e.labels), "subcodes": list(e.subcodes),
             "text": e.text} for e in examples]
    if output.suffix.lower() == ".csv":
        with output.open("w", encoding="utf-8-sig", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["passage_id"])
            w.writeheader()
            for r in rows:
                w.writerow({**r, "labels": ";".join(r["labels"]), "subcodes": ";".join(r["subcodes"])})
    elif output.suffix.lower() == ".jsonl":
        with output.open("w", encoding="utf-8") as f:
            for r in rows:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    else:
        raise PolicyclfError(f"{output}: expected a .jsonl or .csv file name")
    typer.echo(f"{len(rows)} annotated passages → {output}")


@data_app.command("agreement")
@handle_errors
def agreement_cli(
    double: Path = typer.Option(None, "--double", help="double-coded records (default data/annotated/double_coded.jsonl)"),
    final: Path = typer.Option(None, "--final", help="final records (default data/annotated/six_regions.jsonl)"),
    output: Path = typer.Option(None, "-o", "--output", help="default data/annotated/agreement.json"),
    corpus: str = typer.Option(None, "--corpus"),
) -> None:
    """Inter-coder agreement (kappa, Krippendorff's alpha, MASI alpha) and the human ceiling."""
    from policyclf.corpus import annotations_dir, compute_agreement

    adir = annotations_dir()
    result = compute_agreement(double or adir / "double_coded.jsonl", final or adir / "six_regions.jsonl", corpus)
    out = output or adir / "agreement.json"
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    o = result["overall"]
    typer.echo(f"{o['passages']} double-coded passages: exact agreement {o['exact_agreement']:.3f}, "
               f"MASI alpha {o['masi_alpha']:.3f}, pooled kappa {o['pooled_cohen_kappa']:.3f}, "
               f"human-ceiling macro-F1 {o['human_ceiling_macro_f1']:.3f} → {out}")
