"""What the command modules share: the Typer apps, error handling and config overrides (as spaCy's ``cli/_util.py``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import typer

from policyclf.errors import PolicyclfError

app = typer.Typer(name="policyclf", no_args_is_help=True, add_completion=False,
                  help="Code Chinese policy texts against the collaborative-innovation codebook.")
data_app = typer.Typer(no_args_is_help=True, help="Check, export and measure the annotated data.")
app.add_typer(data_app, name="data")


def version_lines() -> list[str]:
    """What ``policyclf --version`` prints: package versions (read from the installed metadata, so
    torch is not imported) and the model used when ``--model`` is not given, with its fingerprint."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from policyclf import __version__

    lines = [f"policyclf {__version__} (Python {platform.python_version()})"]
    for pkg in ("torch", "transformers"):
        try:
            lines.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            lines.append(f"{pkg}: not installed")
    try:
        from policyclf.models.base import read_meta
        from policyclf.predict import default_model_dir

        model = default_model_dir()
    except PolicyclfError as exc:
        return [*lines, f"default model: none ({exc})"]
    try:
        meta = read_meta(model)
    except PolicyclfError as exc:
        return [*lines, f"default model: {model} (unreadable: {exc})"]
    data = meta.get("training_data", {})
    lines.append(f"default model: {model} ({meta['backend']}, saved {meta.get('saved_at', '?')}, "
                 f"training-data fingerprint {data.get('fingerprint', '?')}, {data.get('passages', '?')} passages)")
    return lines


def _print_version(value: bool) -> None:
    if value:
        typer.echo("\n".join(version_lines()))
        raise typer.Exit()


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                       help="print the versions of policyclf, torch and transformers and the "
                                            "default model, then exit")) -> None:
    """Code Chinese policy texts against the collaborative-innovation codebook."""

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(func: F) -> F:
    """Print a PolicyclfError as one line on stderr and exit 1 (no traceback)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PolicyclfError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            typer.echo("interrupted", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``--section.key value`` pairs (or ``--section.key=value``) from extra arguments."""
    out: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("--") or "." not in arg:
            raise PolicyclfError(f"unexpected argument {arg!r}; overrides look like --training.epochs 3")
        if "=" in arg:
            key, value = arg[2:].split("=", 1)
            i += 1
        else:
            if i + 1 >= len(args):
                raise PolicyclfError(f"override {arg} has no value")
            key, value = arg[2:], args[i + 1]
            i += 2
        out[key] = value
    return out
