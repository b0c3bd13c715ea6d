from __future__ import annotations

from pathlib import Path

import typer

from policyclf.cli._util import app, handle_errors, parse_overrides


@app.command("report", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
@handle_errors
def report_cli(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="experiment config (TOML); [report] lists the backends"),
    output: Path = typer.Option(..., "-o", "--output", help="report folder (predictions/ are kept there)"),
    corpus: str = typer.Option(None, "--corpus"),
    rebuild_only: bool = typer.Option(False, "--rebuild-only", help="only recompute numbers and pages from saved predictions"),
    save_models: Path = typer.Option(None, "--save-models", help="keep the all-six-region models here"),
    reuse_models: list[Path] = typer.Option([], "--reuse-model", help="a saved model that may stand in for the "
                                            "all-six-region training run if its settings and training data are "
                                            "identical, or, a bert model, be the teacher of a distilled student on the same "
                                            "data (repeatable)"),
    curve: bool = typer.Option(False, "--curve", help="also run the active-learning learning curve (OUTPUT/curve/)"),
    curve_backends: list[str] = typer.Option(["tfidf"], "--curve-backend", help="backends of the curve (repeatable)"),
    curve_points: list[str] = typer.Option([], "--curve-point", help="run only these curve points (repeatable)"),
    skip_main: bool = typer.Option(False, "--skip-main", help="with --curve: run only the curve, not the main protocol"),
) -> None:
    """Leave-one-region-out + unseen-province evaluation of the backends: report.html and report.json.

    Training splits whose predictions already exist under OUTPUT/predictions are not rerun, so an
    interrupted run resumes and the report can be rebuilt without retraining.
    """
    from policyclf.config import load_config
    from policyclf.protocol import run_protocol
    from policyclf.report import build_report, headline_markdown

    cfg = load_config(config, parse_overrides(ctx.args))
    log = lambda m: typer.echo(m, err=True)  # noqa: E731
    if curve and not rebuild_only:
        from policyclf.learning_curve import run_curve

        run_curve(cfg, output, list(curve_backends), corpus=corpus, only=list(curve_points) or None, log=log)
    if not skip_main and not rebuild_only:
        run_protocol(cfg, output, corpus=corpus, save_models=save_models, reuse_models=list(reuse_models), log=log)
    if (output / "curve").is_dir():  # after the main protocol: its predictions are the curve's end point
        from policyclf.learning_curve import curve_numbers, end_against_base, write_curve

        write_curve(curve_numbers(cfg, output, corpus), output,
                    end_against_base(cfg, output, corpus, cfg.report.bootstrap))
    if skip_main:
        return
    report = build_report(cfg, output, corpus)
    typer.echo(headline_markdown(report))
    typer.echo(f"report written to {output / 'report.html'} and {output / 'report.json'}")
