"""Instruments in DynamoDB (``InstrumentsTable``, pk ``symbol``): the one item format.

Item: ``{symbol: S, name: S, currency: S, tick_size: N, lot_size: N, status: S}``. The orders
API, the markets API, the engine and the CLI all read and write instruments through this module,
so the format lives in one place.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, Protocol

from nexus_common.dynamo import LazyTable, paginate
from nexus_common.instruments import Instrument
from nexus_common.kept import KeptFor


class InstrumentLookup(Protocol):
    def get(self, symbol: str) -> Instrument | None: ...


def instrument_to_item(instrument: Instrument) -> dict[str, Any]:
    return {
        "symbol": instrument.symbol,
        "name": instrument.name,
        "currency": instrument.currency,
        "tick_size": instrument.tick_size,
        "lot_size": instrument.lot_size,
        "status": instrument.status,
    }


def instrument_from_item(item: dict[str, Any]) -> Instrument:
    return Instrument(
        symbol=str(item["symbol"]),
        name=str(item.get("name", "")),
        currency=str(item.get("currency", "USD")),
        tick_size=Decimal(str(item["tick_size"])),
        lot_size=Decimal(str(item["lot_size"])),
        status=str(item.get("status", "active")),
    )


class DynamoInstruments(LazyTable):
    """Read and write instruments in a DynamoDB table given by its physical name."""

    def get(self, symbol: str) -> Instrument | None:
        if not symbol or len(symbol) > 64:
            return None
        item = self.table.get_item(Key={"symbol": symbol}).get("Item")
        return instrument_from_item(item) if item else None

    def list_all(self) -> list[Instrument]:
        items = paginate(self.table.scan)
        return sorted((instrument_from_item(item) for item in items), key=lambda i: i.symbol)

    def put_many(self, instruments: Iterable[Instrument]) -> int:
        """Create or replace each instrument (reference data: the last write wins)."""
        count = 0
        with self.table.batch_writer(overwrite_by_pkeys=["symbol"]) as batch:
            for instrument in instruments:
                batch.put_item(Item=instrument_to_item(instrument))
                count += 1
        return count


class CachedInstruments:
    """An ``InstrumentLookup`` that remembers what it found for ``ttl_seconds``.

    Instruments are reference data read on every order; a warm function keeps them briefly
    instead of reading the table each time. A change (a halt) reaches order entry within the
    TTL; the matching engine checks halts itself, so nothing trades on a halted symbol meanwhile.
    Unknown symbols are not remembered: a listing takes effect at once."""

    def __init__(
        self, source: InstrumentLookup, ttl_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.source = source
        self._kept: KeptFor[Instrument] = KeptFor(ttl_seconds, clock)

    def get(self, symbol: str) -> Instrument | None:
        return self._kept.get(symbol, lambda: self.source.get(symbol))
