"""Matching engine commands of the ``nexus`` CLI: ``replay`` and ``bench matching``."""

from __future__ import annotations

import typer


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
