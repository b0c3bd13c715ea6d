from __future__ import annotations

from pathlib import Path

import typer

from policyclf.cli._util import app, handle_errors


@app.command("label")
@handle_errors
def label_cli(
    input_dir: Path = typer.Argument(..., metavar="INPUT_DIR", help="folder of documents (searched recursively)"),
    output: Path = typer.Option(..., "-o", "--output", help="output folder; rerun with the same arguments to resume"),
    model: Path = typer.Option(None, "--model", help="model directory (default: the shipped model)"),
    workers: int = typer.Option(2, "--workers", min=1, help="processes reading and segmenting documents"),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="passages per model call"),
    review_margin: float = typer.Option(0.1, "--review-margin", min=0.0, help="flag scores this close to a threshold"),
    max_size_mb: float = typer.Option(20.0, "--max-size-mb", min=0.1, help="skip (and report) larger files: on disk, "
                                      "per .docx member once inflated (2x in all), and as text read"),
    max_passages: int = typer.Option(10_000, "--max-passages", min=1, help="skip (and report) documents with more "
                                     "passages"),
    engine: str = typer.Option("local", "--engine", help="local, or ray (pip install 'policyclf[ray]')"),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda (BERT; default auto: a GPU if there is one)"),
    precision: str = typer.Option(None, "--precision", help="auto, float32, bfloat16 or int8 (BERT; default: the model's, auto = by the CPU's capabilities)"),
    quiet: bool = typer.Option(False, "--quiet"),
) -> None:
    """Label a folder of documents: passages.jsonl/.csv, documents.csv, labels.xlsx, errors.jsonl."""
    from policyclf.batch import label_folder

    res = label_folder(input_dir, output, model, workers=workers, batch_size=batch_size, review_margin=review_margin,
                       max_bytes=int(max_size_mb * 2**20), progress=not quiet, engine=engine,
                       device=device, precision=precision, max_passages=max_passages)
    typer.echo(f"{res.documents} documents, {res.passages} passages labelled ({res.labelled_now} documents this run, "
               f"{res.skipped_unchanged} unchanged and skipped); {res.errors} unreadable → {res.out}/errors.jsonl"
               + (f"; {res.warned} read with library warnings → {res.out}/warnings.jsonl" if res.warned else ""))
    typer.echo(f"results: {res.out}/passages.jsonl, passages.csv, documents.csv, labels.xlsx")
