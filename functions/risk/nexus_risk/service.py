"""The application layer of risk: a batch of engine steps applied to the account items.

The facts of every order in the batch (``prefetch_ids``) and the watermarks of every account its
events name (``account_keys``) are read together (``BatchReads``: one ``BatchGetItem``), the
changes computed per engine step (as ``changes_of`` expects), and each account gets one
conditional write for the whole batch (``nexus_risk.coalesce``), which leaves it as one write per
event would have.

An entry closed by the fence (``rejected``, reason ``entry_incomplete``), or a replace refused by
its fence that reserved up front (``replace_rejected``, ``entry_incomplete``), is not in that
write: its reservation (for the replace, the id its terms item names) is given back by id, only while the
account item holds the id
(``nexus_risk.domain.held_releases``), with one conditional ``UpdateItem`` of its own
(``AccountItems.release_held``), whatever the watermarks: the condition on the id makes it
idempotent (a redelivery finds the id gone), and it commutes with the batch's write (both add
deltas; that write's condition reads only the watermarks). Requests: one extra ``UpdateItem`` per
such rejection (rare: an entry or a replace stopped half way), none for any other event.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from nexus_common.fees import FeeSchedule

from nexus_risk.coalesce import AccountWrite, Watermarks, coalesce
from nexus_risk.domain import HeldRelease, OrderFacts, account_keys, changes_of, held_releases, prefetch_ids


class OrderFactsSource(Protocol):
    """The orders' reserved terms, looked up by order id after one ``prefetch`` of a batch's ids."""

    def prefetch(self, order_ids: Iterable[str]) -> None: ...

    def __call__(self, order_id: str) -> OrderFacts | None: ...


class AccountItems(Protocol):
    """The account items: their per-symbol watermarks, one guarded write per account, and the
    releases given back only while the item holds their reservation id."""

    def watermarks(self, keys: Iterable[tuple[str, str]]) -> Watermarks: ...

    def write(self, write: AccountWrite) -> None: ...

    def release_held(self, release: HeldRelease) -> bool:
        """Give ``release`` back and remove its id, only while the account item holds the id;
        False (nothing changes) when it does not."""
        ...


class BatchReads(Protocol):
    """A batch's facts prefetch and its accounts' watermarks in one read."""

    def load(self, order_ids: Iterable[str], keys: Iterable[tuple[str, str]]) -> Watermarks:
        """Prefetch the facts of ``order_ids`` (as ``OrderFactsSource.prefetch``) and return the
        watermarks of ``keys`` (as ``AccountItems.watermarks``)."""
        ...


@dataclass(frozen=True)
class SeparateReads:
    """``BatchReads`` as two reads: the facts source's prefetch, then the accounts' watermarks."""

    facts: OrderFactsSource
    accounts: AccountItems

    def load(self, order_ids: Iterable[str], keys: Iterable[tuple[str, str]]) -> Watermarks:
        self.facts.prefetch(order_ids)
        return self.accounts.watermarks(keys)


def apply_batch(
    steps: list[list[Any]], facts: OrderFactsSource, accounts: AccountItems, fees: FeeSchedule,
    reads: BatchReads | None = None,
) -> int:  # fmt: skip
    """Apply a batch of engine steps (the events of each record, in order); returns how many
    account writes applied (one per account written, plus each release while held that found
    its id). The facts and the watermarks of the accounts the events name are read first (by
    ``reads``; without, ``SeparateReads``); a pair the changes need beyond those is read once
    they are known."""
    events = [event for step in steps for event in step]
    guessed = set(account_keys(events))
    read = (reads or SeparateReads(facts, accounts)).load(prefetch_ids(events), guessed)
    changes = [change for step in steps for change in changes_of(step, facts, fees)]
    releases = [release for step in steps for release in held_releases(step, facts)]
    written = 0
    if changes:
        needed = {(change.account_id, change.symbol) for change in changes}
        watermarks = dict(accounts.watermarks(needed - guessed)) if needed - guessed else {}
        watermarks.update((key, seq) for key, seq in read.items() if key in needed)
        writes = coalesce(changes, watermarks)
        for write in writes.values():
            accounts.write(write)
        written = len(writes)
    # After the batch's other events: a fence comes after every event of the order it names, so
    # an order that ended in this batch has its id removed first and is not given back twice.
    return written + sum(1 for release in releases if accounts.release_held(release))
