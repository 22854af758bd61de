"""Venue administration of the ``nexus`` CLI: ``venues add|list|disable|enable`` (the venues
table the router and the market maker read)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Annotated, Any

import typer

from nexus import platform as target_platform
from nexus.platform import refused


def _venues() -> Any:
    from nexus_routing.repo import DynamoVenues

    return DynamoVenues(target_platform.tables()("VenuesTable"))


def venues_add(body: dict[str, Any]) -> dict[str, Any]:
    """Add a venue (``Venue.from_item`` validates it); an existing name is refused."""
    from nexus_common.errors import NexusError
    from nexus_routing.venues import Venue

    try:
        venue = Venue.from_item(body)
        _venues().add(venue)
    except NexusError as exc:
        raise refused(exc.code, exc.message, exc.field) from None
    added: dict[str, Any] = venue.to_item()
    return added


def venues_list() -> list[dict[str, Any]]:
    return [venue.to_item() for venue in _venues().list()]


def venues_set_enabled(name: str, enabled: bool) -> dict[str, Any]:
    from nexus_common.errors import NexusError

    try:
        changed: dict[str, Any] = _venues().set_enabled(name, enabled).to_item()
    except NexusError as exc:
        raise refused(exc.code, exc.message, exc.field) from None
    return changed


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    venues_app = typer.Typer(help="Execution venues: the internal book and the simulated external ones.",
                             no_args_is_help=True)
    app.add_typer(venues_app, name="venues")

    @venues_app.command("add")
    @target_platform.command
    def add(
        name: Annotated[str, typer.Option("--name", help="The venue's name (unique).")],
        mic: Annotated[str, typer.Option("--mic", help="ISO 10383 market identifier code, 4 characters.")],
        kind: Annotated[str, typer.Option("--kind", help="internal or simulated.")] = "simulated",
        taker_fee: Annotated[str, typer.Option("--taker-fee", help="USD per share a taker pays.")] = "0",
        maker_rebate: Annotated[str, typer.Option("--maker-rebate", help="USD per share a maker receives.")] = "0",
        latency_us: Annotated[int, typer.Option("--latency-us", min=0, help="Base round-trip latency.")] = 500,
        jitter_us: Annotated[int, typer.Option("--jitter-us", min=0, help="Uniform jitter on top.")] = 100,
        seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of latency and simulated flow.")] = 0,
        disabled: Annotated[bool, typer.Option("--disabled", help="Add it disabled.")] = False,
    ) -> None:
        """Add a venue; it quotes and takes orders once enabled."""
        for label, raw in (("taker_fee", taker_fee), ("maker_rebate", maker_rebate)):
            try:
                Decimal(raw)
            except ArithmeticError:
                raise refused("invalid_field", f"{label} is a decimal", label) from None
        body = {"name": name, "mic": mic, "kind": kind, "enabled": not disabled,
                "fees": {"taker_fee": taker_fee, "maker_rebate": maker_rebate},
                "latency": {"base_us": latency_us, "jitter_us": jitter_us, "seed": seed},
                "fill_model": {"seed": seed}}  # fmt: skip
        typer.echo(json.dumps(venues_add(body)))

    @venues_app.command("list")
    @target_platform.command
    def list_() -> None:
        """Every venue, one JSON object a line."""
        for venue in venues_list():
            typer.echo(json.dumps(venue))

    @venues_app.command("disable")
    @target_platform.command
    def disable(name: Annotated[str, typer.Argument(help="The venue's name.")]) -> None:
        """Disable a venue: it is no longer quoted in the NBBO nor routed to."""
        typer.echo(json.dumps(venues_set_enabled(name, False)))

    @venues_app.command("enable")
    @target_platform.command
    def enable(name: Annotated[str, typer.Argument(help="The venue's name.")]) -> None:
        """Enable a venue again."""
        typer.echo(json.dumps(venues_set_enabled(name, True)))
