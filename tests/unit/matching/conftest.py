"""Fixtures of the matching-engine tests.

``checked(engine)`` wraps an engine so that every event it emits is checked against the shared
kernel: it validates with ``ENGINE_EVENT_ADAPTER``, re-serializes to exactly the same dict (so every
field is present and every decimal is in canonical form), survives a JSON round trip, carries
the command's ``ts``, ``command_id`` (a replace's fence: the replace's) and the engine's epoch,
and continues its symbol's ``seq``
without a gap, with ``event_id == f"{symbol}-{seq}"``.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any

import pytest
from nexus_common.events import ENGINE_EVENT_ADAPTER
from nexus_common.instruments import Instrument
from nexus_matching.engine import MatchingEngine

TS = "2024-05-01T14:30:00.000000Z"

INSTRUMENTS: dict[str, Instrument] = {
    i.symbol: i
    for i in (
        Instrument(symbol="AAPL", tick_size=Decimal("0.01"), lot_size=Decimal("1")),
        Instrument(symbol="MSFT", tick_size=Decimal("0.01"), lot_size=Decimal("1")),
        # fractional lots and a coarse tick: exercises the integer <-> decimal conversions
        Instrument(symbol="XBT", tick_size=Decimal("0.5"), lot_size=Decimal("0.0001")),
        # halted by a ``halt`` command in the ``venue`` fixture (the engine reads no status)
        Instrument(
            symbol="HALT", tick_size=Decimal("0.01"), lot_size=Decimal("1"), status="halted"
        ),
    )
}


def check_event(event: dict[str, Any], command: Mapping[str, Any], epoch: int) -> None:
    model = ENGINE_EVENT_ADAPTER.validate_python(event)
    dumped = model.model_dump(mode="json")
    dumped["ts"] = event["ts"]  # the model re-renders the instant; the engine passes it through
    assert dumped == event, "event is not exactly the shape of its model"
    assert json.loads(json.dumps(event)) == event
    assert event["ts"] == command["ts"]
    correlation = command["command_id"]
    if event["type"] == "replace_rejected" and command["type"] == "fence":
        correlation = command.get("replace_command_id")  # a replace's fence refuses it under its own id
    assert event["correlation_id"] == correlation
    assert event["epoch"] == epoch
    assert event["version"] == 1
    assert event["event_id"] == f"{event['symbol']}-{event['seq']}"


class Checked:
    """An engine whose every event is checked (see the module doc)."""

    def __init__(self, engine: MatchingEngine) -> None:
        self.engine = engine
        self.seqs: dict[str, int] = dict(engine.snapshot()["seq"])
        self.log: list[dict[str, Any]] = []

    def process(self, command: Mapping[str, Any]) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.engine.process(command)
        for event in events:
            check_event(event, command, self.engine.epoch)
            symbol = event["symbol"]
            assert symbol == command.get("symbol") or command["type"] in ("mass_cancel", "clock")
            assert event["seq"] == self.seqs.get(symbol, 0) + 1, "seq gap or repeat"
            self.seqs[symbol] = event["seq"]
        self.log.extend(events)
        return events


class Commands:
    """Builds commands with fresh command ids."""

    def __init__(self) -> None:
        self._ids: Iterator[int] = itertools.count(1)

    def new(
        self,
        order_id: str,
        side: str,
        quantity: str,
        price: str | None = None,
        *,
        order_type: str | None = None,
        tif: str = "gtc",
        account: str = "acct-1",
        symbol: str = "AAPL",
    ) -> dict[str, Any]:
        command: dict[str, Any] = {
            "type": "new",
            "command_id": f"cmd-{next(self._ids)}",
            "order_id": order_id,
            "account_id": account,
            "symbol": symbol,
            "side": side,
            "order_type": order_type or ("market" if price is None else "limit"),
            "quantity": quantity,
            "time_in_force": tif,
            "ts": TS,
        }
        if price is not None:
            command["price"] = price
        return command

    def cancel(
        self, order_id: str, *, account: str = "acct-1", symbol: str = "AAPL"
    ) -> dict[str, Any]:
        return {
            "type": "cancel",
            "command_id": f"cmd-{next(self._ids)}",
            "order_id": order_id,
            "account_id": account,
            "symbol": symbol,
            "ts": TS,
        }

    def fence(
        self, order_id: str, *, account: str = "acct-1", symbol: str = "AAPL", ts: str = TS, replace: str | None = None
    ) -> dict[str, Any]:
        command = {
            "type": "fence",
            "command_id": f"cmd-{next(self._ids)}",
            "order_id": order_id,
            "account_id": account,
            "symbol": symbol,
            "ts": ts,
        }
        if replace is not None:
            command["replace_command_id"] = replace
        return command

    def halt(self, symbol: str = "AAPL", reason: str = "news pending", *, resume: bool = False) -> dict[str, Any]:
        return {
            "type": "resume" if resume else "halt",
            "command_id": f"cmd-{next(self._ids)}",
            "symbol": symbol,
            "reason": reason,
            "ts": TS,
        }


@pytest.fixture(scope="session")
def instruments() -> dict[str, Instrument]:
    return INSTRUMENTS


@pytest.fixture(scope="session")
def checked() -> Callable[[MatchingEngine], Checked]:
    return Checked


@pytest.fixture
def venue() -> Checked:
    """A fresh engine over the test instruments (HALT halted), every event checked."""
    engine = MatchingEngine(INSTRUMENTS)
    engine.process(Commands().halt("HALT", resume=False) | {"command_id": "halt-HALT"})
    return Checked(engine)


@pytest.fixture
def cmd() -> Commands:
    return Commands()
