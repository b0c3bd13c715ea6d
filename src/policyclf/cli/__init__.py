"""The ``policyclf`` command: one file per command, each a thin wrapper over a library function.

The apps live in :mod:`policyclf.cli._util`, which the command modules import; this package
only imports the commands (registering them) and exposes ``app`` and ``main``.
"""

from __future__ import annotations

from policyclf.cli import analyze, data, evaluate, label, predict, report, retrain, train  # noqa: F401
from policyclf.cli._util import app


def main() -> None:
    app()


__all__ = ["app", "main"]
