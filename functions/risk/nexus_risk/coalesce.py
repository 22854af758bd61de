"""A batch of account changes folded into one write per account.

Pure domain (no boto3). ``nexus_risk.domain`` gives one ``AccountChange`` per event per account;
applied one by one, each is added to the account item unless the item's watermark for the
event's symbol (``seq#S``) is already at or past the event's ``seq``, and then the watermark
becomes that ``seq``. ``coalesce`` replays exactly that rule in memory, in event order, from the
watermarks the item holds before the batch, and sums what would have been written: the one
write per account that results leaves the item as the one-by-one writes would have (redelivered
and older events are dropped by the same rule), and ``previous`` says which watermarks the
write must find unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from nexus_common.risk import ZERO

from nexus_risk.domain import AccountChange


@dataclass
class SymbolDelta:
    pos: Decimal = ZERO
    sellable: Decimal = ZERO
    buying: Decimal = ZERO


@dataclass
class AccountWrite:
    """What one batch adds to one account item."""

    account_id: str
    cash: Decimal = ZERO
    available: Decimal = ZERO
    symbols: dict[str, SymbolDelta] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)  # the new watermark of each symbol touched
    previous: dict[str, int | None] = field(default_factory=dict)  # its watermark before the batch
    events: list[str] = field(default_factory=list)  # ids of the events applied
    ended_ids: list[str] = field(default_factory=list)  # reservation ids to DELETE from the account's set


Watermarks = Mapping[tuple[str, str], int | None]


def coalesce(changes: Iterable[AccountChange], watermarks: Watermarks) -> dict[str, AccountWrite]:
    """One ``AccountWrite`` per account that has something to apply (see the module docstring).

    ``watermarks`` holds, for each (account, symbol) of the changes, the item's ``seq#S`` before
    the batch (None when the item has none); an account missing from it is skipped, as the
    one-by-one write does not apply to an account that does not exist."""
    current: dict[tuple[str, str], int | None] = {}
    writes: dict[str, AccountWrite] = {}
    for change in changes:
        key = (change.account_id, change.symbol)
        if key not in watermarks:
            continue
        seen = current[key] if key in current else watermarks[key]
        if seen is not None and seen >= change.seq:
            continue
        write = writes.get(change.account_id)
        if write is None:
            write = writes[change.account_id] = AccountWrite(change.account_id)
        if change.symbol not in write.symbols:
            write.symbols[change.symbol] = SymbolDelta()
            write.previous[change.symbol] = watermarks[key]
        delta = write.symbols[change.symbol]
        write.cash += change.cash
        write.available += change.available
        delta.pos += change.pos
        delta.sellable += change.sellable
        delta.buying += change.buying
        write.seq[change.symbol] = change.seq
        write.events.append(change.event_id)
        write.ended_ids += [rid for rid in change.ended_ids if rid not in write.ended_ids]
        current[key] = change.seq
    return writes
