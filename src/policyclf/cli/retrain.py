from __future__ import annotations

from pathlib import Path

import typer

from policyclf.cli._util import app, handle_errors, parse_overrides


@app.command("retrain", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handle_errors
def retrain_cli(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="experiment config (TOML); trains on all its annotation files"),
    against: Path = typer.Option(..., "--against", help="the current model directory"),
    output: Path = typer.Option(..., "-o", "--output", help="the new model directory"),
    promote: bool = typer.Option(False, "--promote", help="replace --against with the new model unless it is significantly worse"),
    test: Path = typer.Option(None, "--test", help="held-out annotation file (default: [report] test_annotations)"),
    corpus: str = typer.Option(None, "--corpus"),
    force: bool = typer.Option(False, "--force", help="overwrite OUTPUT"),
    reuse_model: list[Path] = typer.Option(
        [], "--reuse-model", help="a saved model that stands in for the training run if its settings and training "
        "data are identical (e.g. `report --save-models`' unseen-split model; repeatable)"),
) -> None:
    """Retrain on all gold data and compare with the current model (paired bootstrap, per category)."""
    from policyclf.config import load_config
    from policyclf.labels import CATEGORIES
    from policyclf.retrain import retrain

    cfg = load_config(config, parse_overrides(ctx.args))
    comp = retrain(cfg, against, output, promote=promote, force=force, corpus=corpus, test_file=test,
                   reuse_models=reuse_model, log=typer.echo)
    m = comp["macro_f1"]
    typer.echo(f"held-out {comp['test']} ({comp['passages']} passages): current macro-F1 "
               f"{comp['current']['macro_f1']:.3f}, new {comp['new']['macro_f1']:.3f}; new − current "
               f"{m['diff']:+.3f} [{m['lo']:+.3f}, {m['hi']:+.3f}] → {comp['verdict']}")
    for c in CATEGORIES:
        d = comp["per_category"][c]
        typer.echo(f"  {c:24s} {d['current']:.3f} → {d['new']:.3f} ({d['diff']:+.3f} [{d['lo']:+.3f}, {d['hi']:+.3f}])")
    typer.echo(f"new model: {output} (comparison in its MODEL_CARD.md)"
               + (f"; promoted to {against}" if comp["promoted"] else ""))
