from __future__ import annotations

from pathlib import Path

import typer

from policyclf.cli._util import app, handle_errors, parse_overrides

OVERRIDES = {"allow_extra_args": True, "ignore_unknown_options": True}


@app.command("train", context_settings=OVERRIDES)
@handle_errors
def train_cli(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="experiment config (TOML)"),
    output: Path = typer.Option(..., "-o", "--output", help="model directory to write"),
    corpus: str = typer.Option(None, "--corpus", help="corpus directory (default: $POLICYCLF_CORPUS or ../shared/corpus)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing model directory"),
) -> None:
    """Train a model from annotated passages. Extra --section.key VALUE pairs override the config."""
    from policyclf.config import load_config
    from policyclf.training import train

    cfg = load_config(config, parse_overrides(ctx.args))
    out = train(cfg, output, force=force, corpus=corpus)
    typer.echo(f"model written to {out}")
