"""Seeding and reading instruments; what the operator CLI calls.

``put_instruments(table_name, instruments)`` creates or replaces instruments in the
``InstrumentsTable`` (physical name, e.g. ``nexus-local-instruments``);
``put_instruments(table_name)`` with no instruments seeds ``DEMO_INSTRUMENTS``. The item format
is ``nexus_common.instrument_store`` (shared with the orders API and the engine).
"""

from __future__ import annotations

from collections.abc import Iterable

from nexus_common.instrument_store import DynamoInstruments
from nexus_common.instruments import DEMO_INSTRUMENTS, Instrument


def put_instruments(table_name: str, instruments: Iterable[Instrument] | None = None) -> int:
    """Create or replace instruments; returns how many were written."""
    chosen = DEMO_INSTRUMENTS if instruments is None else tuple(instruments)
    return DynamoInstruments(table_name).put_many(chosen)


def list_instruments(table_name: str) -> list[Instrument]:
    """Every instrument of the table, sorted by symbol."""
    return DynamoInstruments(table_name).list_all()
