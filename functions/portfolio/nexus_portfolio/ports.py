"""The ports of the portfolio service: what the use cases (``service.py``) need from the stores.

Protocols only; the DynamoDB adapters in ``repo.py`` implement them, the unit tests' fakes too.
The value types they carry are the domain's (``ledger.Entry``, ``positions.Position``,
``settlement.Obligation``/``Batch``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from nexus_portfolio.ledger import Entry
from nexus_portfolio.positions import Position
from nexus_portfolio.settlement import Batch, Obligation


class PositionStore(Protocol):
    def get(self, account_id: str, symbol: str) -> Position | None: ...

    def save(self, position: Position, previous_seq: int | None) -> bool:
        """Write unless the item's ``last_seq`` is no longer ``previous_seq``; False if refused."""


class EntryWriter(Protocol):
    def post(self, entry: Entry) -> bool: ...


class ObligationWriter(Protocol):
    def add(self, obligation: Obligation) -> bool: ...


class BatchPositionStore(PositionStore, Protocol):
    def get_many(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Position]: ...


class BatchEntryWriter(Protocol):
    def post_many(self, entries: list[Entry]) -> None:
        """Write every entry (an entry written again is the same item: nothing changes)."""


class BatchObligationWriter(Protocol):
    def add_many(self, obligations: list[Obligation]) -> int:
        """Write the obligations that do not exist yet; returns how many were written."""


class SettlementStore(Protocol):
    def due(self, as_of: date) -> list[Obligation]:
        """Pending obligations due on or before ``as_of``."""

    def unfinished(self, as_of: date) -> list[Batch]:
        """Batches left ``started`` (a run died in the middle)."""

    def attempts(self, account_id: str, symbol: str, settle_date: date) -> int:
        """How many batches were started for this (account, symbol, date)."""

    def start(self, batch: Batch) -> bool:
        """Record a new batch (conditional); False when that batch id exists."""

    def claim(self, batch: Batch) -> None: ...

    def unclaim(self, batch: Batch) -> None: ...

    def mark_settled(self, batch: Batch, at: datetime) -> None: ...

    def unmark_settled(self, batch: Batch) -> None: ...

    def finish(self, batch: Batch) -> None:
        """Record the batch's final status (``settled`` or ``failed``)."""


class Journal(Protocol):
    def post(self, entry: Entry) -> bool:
        """Conditional put; False when the entry is already there."""

    def exists(self, entry: Entry) -> bool: ...


class Accounts(Protocol):
    def get(self, account_id: str) -> dict[str, Any] | None: ...


class Positions(Protocol):
    def of_account(self, account_id: str) -> list[Position]: ...


class Prices(Protocol):
    def last(self, symbol: str) -> Decimal | None: ...


class JournalReader(Protocol):
    def of_account(self, account_id: str, start: str, end: str, limit: int | None = None) -> list[Entry]: ...


class SettlementReader(Protocol):
    def of_account(self, account_id: str) -> tuple[list[Obligation], list[Batch]]: ...

    def open_of_account(self, account_id: str) -> list[Obligation]:
        """The account's obligations not settled yet (pending or settling)."""
