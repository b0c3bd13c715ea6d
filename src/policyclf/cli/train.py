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


@app.command("ensemble")
@handle_errors
def ensemble_cli(
    members: list[Path] = typer.Argument(..., help="saved model directories trained on the same passages"),
    output: Path = typer.Option(..., "-o", "--output", help="ensemble model directory to write"),
    weights: list[float] = typer.Option([], "--weight", help="one weight per member, in order (default: equal)"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing model directory"),
) -> None:
    """Put an ensemble model together from saved models (copies them; trains nothing).

    Each member's score is centred on its own threshold in logit space and the centred logits are
    averaged; to train the members and the ensemble in one go, use `train` with --model.backend ensemble.
    """
    from policyclf.models.ensemble import assemble

    out = assemble(members, output, weights, force=force)
    typer.echo(f"ensemble of {len(members)} models written to {out}")
