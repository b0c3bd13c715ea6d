from __future__ import annotations

import json
from pathlib import Path

import typer

from policyclf.cli._util import app, handle_errors


@app.command("evaluate")
@handle_errors
def evaluate_cli(
    model_dir: Path = typer.Argument(..., metavar="MODEL_DIR"),
    annotations: list[Path] = typer.Option(None, "--annotations", help="final annotation file(s); default: the unseen-province test set"),
    regions: list[str] = typer.Option(None, "--regions", help="only these regions (repeatable)"),
    output: Path = typer.Option(None, "-o", "--output", help="write the JSON here (default: print it)"),
    corpus: str = typer.Option(None, "--corpus"),
) -> None:
    """Micro/macro/sample F1 and per-category precision/recall/F1 on annotated passages."""
    from policyclf.evaluation import evaluate_model
    from policyclf.jsonutil import clean_json

    result = evaluate_model(model_dir, annotations or None, regions or None, corpus)
    text = json.dumps(clean_json(result), indent=2, ensure_ascii=False)
    if output:
        output.write_text(text + "\n", encoding="utf-8")
        typer.echo(f"macro-F1 {result['macro_f1']:.3f}, micro-F1 {result['micro_f1']:.3f} "
                   f"on {result['n']} passages → {output}")
    else:
        typer.echo(text)
    if "warning" in result:
        typer.echo(f"warning: {result['warning']}", err=True)
