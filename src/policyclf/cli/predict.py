from __future__ import annotations

from pathlib import Path

import typer

from policyclf.cli._util import app, handle_errors


@app.command("predict")
@handle_errors
def predict_cli(
    input_path: Path = typer.Argument(..., metavar="INPUT", help="passage .jsonl, a document, or a folder of documents"),
    output: Path = typer.Option(..., "-o", "--output", help="output .jsonl or .csv"),
    model: Path = typer.Option(None, "--model", help="model directory (default: the shipped model)"),
    batch_size: int = typer.Option(256, "--batch-size", min=1, help="passages per model call"),
    force: bool = typer.Option(False, "--force", help="overwrite OUTPUT"),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda (BERT; default auto: a GPU if there is one)"),
    precision: str = typer.Option(None, "--precision", help="auto, float32, bfloat16 or int8 (BERT; default: the model's, auto = by the CPU's capabilities)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Label passages: one output line (or CSV row) per passage with all seven scores."""
    from policyclf.predict import predict

    res = predict(input_path, output, model, force=force, batch_size=batch_size, progress=not quiet, device=device,
                  precision=precision)
    for path, reason in res.errors:
        typer.echo(f"skipped: {reason}", err=True)
    docs = f" from {res.documents} document(s)" if res.documents else ""
    typer.echo(f"{res.passages} passages{docs} labelled → {res.output}"
               + (f"; {len(res.errors)} file(s) skipped" if res.errors else ""))
