"""The application layer of risk: a batch of engine steps applied to the account items.

The facts of every order in the batch are read together (``prefetch_ids``), the changes computed
per engine step (as ``changes_of`` expects), the accounts' watermarks read in one go, and each
account gets one conditional write for the whole batch (``nexus_risk.coalesce``), which leaves
it as one write per event would have.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from nexus_common.fees import FeeSchedule

from nexus_risk.coalesce import AccountWrite, Watermarks, coalesce
from nexus_risk.domain import OrderFacts, changes_of, prefetch_ids


class OrderFactsSource(Protocol):
    """The orders' reserved terms, looked up by order id after one ``prefetch`` of a batch's ids."""

    def prefetch(self, order_ids: Iterable[str]) -> None: ...

    def __call__(self, order_id: str) -> OrderFacts | None: ...


class AccountItems(Protocol):
    """The account items: their per-symbol watermarks, and one guarded write per account."""

    def watermarks(self, keys: Iterable[tuple[str, str]]) -> Watermarks: ...

    def write(self, write: AccountWrite) -> None: ...


def apply_batch(steps: list[list[Any]], facts: OrderFactsSource, accounts: AccountItems, fees: FeeSchedule) -> int:
    """Apply a batch of engine steps (the events of each record, in order); returns how many
    account items were written."""
    facts.prefetch(prefetch_ids(event for step in steps for event in step))
    changes = [change for step in steps for change in changes_of(step, facts, fees)]
    if not changes:
        return 0
    watermarks = accounts.watermarks((change.account_id, change.symbol) for change in changes)
    writes = coalesce(changes, watermarks)
    for write in writes.values():
        accounts.write(write)
    return len(writes)
