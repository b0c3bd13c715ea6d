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
