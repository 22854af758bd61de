"""T+2 settlement: obligations from fills, netted per account, symbol and date, settled as a saga.

Pure domain behind two ports (``SettlementStore``, ``Journal``); no boto3 here.

Each fill creates one obligation of its account, due on the settlement date of the trade
(``nexus_common.calendar.settlement_date``: T+2 business days in New York): ``cash`` (signed,
what the account receives: a buyer's is negative) and ``quantity`` (signed, shares it receives).

A settlement run (scheduled) takes every pending obligation due on or before ``as_of``, groups
them by (account, symbol, due date), nets each group and settles it as a saga, recorded as a
batch item (``batch_id`` = ``<date>#<symbol>#<attempt>``):

1. ``claim``: each obligation ``pending -> settling`` (conditional on ``pending``, or already
   claimed by this batch);
2. ``post``: the settlement journal entry (pending cash/securities -> cash/securities), one
   conditional put;
3. ``mark``: each obligation ``settling -> settled``;
4. ``finish``: the batch is recorded ``settled`` with its net amounts.

Every step is idempotent. When a step fails, the steps done so far and the failed step itself
(which may have half happened) are compensated in reverse order: ``mark`` by putting the
obligations back to ``settling``, ``post`` by posting the entry's reversal (if it was posted),
``claim`` by putting the obligations back to ``pending``; then the batch is recorded ``failed``
with the step and the error. The obligations are pending again and a later run settles them in
a new attempt. A batch left ``started`` (the run died, its outcome could not be recorded, or a
compensation failed) is compensated the same way by the next run before it settles anything.
So no obligation stays half settled past the next run.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

from nexus_common.events import iso
from nexus_common.money import fmt

from nexus_portfolio.ledger import Entry, reversal, settlement_entry

ZERO = Decimal(0)


@dataclass(frozen=True)
class Obligation:
    account_id: str
    symbol: str
    settle_date: date
    trade_date: date
    event_id: str
    liquidity: str
    cash: Decimal  # signed: > 0 the account receives cash
    quantity: Decimal  # signed: > 0 the account receives shares
    status: str = "pending"  # pending | settling | settled
    batch_id: str | None = None

    @property
    def item_id(self) -> str:
        return f"OBL#{self.settle_date.isoformat()}#{self.symbol}#{self.event_id}#{self.liquidity}"

    def to_wire(self) -> dict[str, Any]:
        return {
            "obligation_id": self.item_id.removeprefix("OBL#"),
            "symbol": self.symbol,
            "trade_date": self.trade_date.isoformat(),
            "settle_date": self.settle_date.isoformat(),
            "cash": fmt(self.cash),
            "quantity": fmt(self.quantity),
            "status": self.status,
            "batch_id": self.batch_id,
        }


@dataclass(frozen=True)
class Batch:
    account_id: str
    symbol: str
    settle_date: date
    attempt: int
    created_at: datetime
    obligations: tuple[str, ...]  # item ids
    cash: Decimal
    quantity: Decimal
    status: str = "started"  # started | settled | failed
    failed_step: str | None = None
    error: str | None = None

    @property
    def batch_id(self) -> str:
        return f"{self.settle_date.isoformat()}#{self.symbol}#{self.attempt:03d}"

    @property
    def item_id(self) -> str:
        return f"BAT#{self.batch_id}"

    def entry(self) -> Entry:
        return settlement_entry(
            batch_id=self.batch_id,
            account_id=self.account_id,
            symbol=self.symbol,
            cash=self.cash,
            quantity=self.quantity,
            ts=self.created_at,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "symbol": self.symbol,
            "settle_date": self.settle_date.isoformat(),
            "cash": fmt(self.cash),
            "quantity": fmt(self.quantity),
            "obligations": len(self.obligations),
            "status": self.status,
            "failed_step": self.failed_step,
            "error": self.error,
            "created_at": iso(self.created_at),
        }


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


@dataclass
class RunReport:
    as_of: date
    settled: list[Batch] = field(default_factory=list)
    failed: list[Batch] = field(default_factory=list)
    recovered: list[Batch] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "settled": len(self.settled),
            "failed": len(self.failed),
            "recovered": len(self.recovered),
            "failures": [{"batch_id": b.batch_id, "account_id": b.account_id, "step": b.failed_step,
                          "error": b.error} for b in self.failed],
        }


def obligation_for_fill(
    *, account_id: str, symbol: str, side: str, liquidity: str, event_id: str, quantity: Decimal,
    cash: Decimal, trade_day: date, settle_day: date,
) -> Obligation:
    sign = 1 if side == "buy" else -1
    return Obligation(
        account_id=account_id, symbol=symbol, settle_date=settle_day, trade_date=trade_day,
        event_id=event_id, liquidity=liquidity, cash=-sign * cash, quantity=sign * quantity,
    )


def net(obligations: Iterable[Obligation]) -> dict[tuple[str, str, date], list[Obligation]]:
    groups: dict[tuple[str, str, date], list[Obligation]] = defaultdict(list)
    for obligation in obligations:
        groups[(obligation.account_id, obligation.symbol, obligation.settle_date)].append(obligation)
    return dict(groups)


class Settlement:
    """Runs the saga (see the module docstring)."""

    STEPS = ("claim", "post", "mark")

    def __init__(self, store: SettlementStore, journal: Journal, clock: Callable[[], datetime]) -> None:
        self.store = store
        self.journal = journal
        self.clock = clock

    def run(self, as_of: date) -> RunReport:
        report = RunReport(as_of)
        for batch in self.store.unfinished(as_of):
            report.recovered.append(self._compensate(batch, list(self.STEPS), "recovery", "run interrupted"))
        for (account_id, symbol, day), group in sorted(net(self.store.due(as_of)).items()):
            batch = Batch(
                account_id=account_id,
                symbol=symbol,
                settle_date=day,
                attempt=self.store.attempts(account_id, symbol, day) + 1,
                created_at=self.clock(),
                obligations=tuple(sorted(o.item_id for o in group)),
                cash=sum((o.cash for o in group), ZERO),
                quantity=sum((o.quantity for o in group), ZERO),
            )
            if not self.store.start(batch):
                continue  # another run took it
            try:
                done = self._settle(batch)
            except Exception as exc:  # noqa: BLE001 - saga: a failed compensation leaves the batch started, recovered next run
                done = replace(batch, failed_step="compensation", error=f"{type(exc).__name__}: {exc}")
            (report.settled if done.status == "settled" else report.failed).append(done)
        return report

    def _do(self, step: str, batch: Batch) -> None:
        if step == "claim":
            self.store.claim(batch)
        elif step == "post":
            self.journal.post(batch.entry())
        else:
            self.store.mark_settled(batch, self.clock())

    def _undo(self, step: str, batch: Batch) -> None:
        if step == "claim":
            self.store.unclaim(batch)
        elif step == "post":
            entry = batch.entry()
            if self.journal.exists(entry):
                self.journal.post(reversal(entry, batch.created_at))
        else:
            self.store.unmark_settled(batch)

    def _settle(self, batch: Batch) -> Batch:
        attempted: list[str] = []
        for step in self.STEPS:
            attempted.append(step)
            try:
                self._do(step, batch)
            except Exception as exc:  # noqa: BLE001 - saga: any failed step is compensated, whatever it raised
                return self._compensate(batch, attempted, step, f"{type(exc).__name__}: {exc}")
        settled = replace(batch, status="settled")
        try:
            self.store.finish(settled)
        except Exception as exc:  # noqa: BLE001 - saga: an unrecorded outcome is recovered by the next run
            return replace(batch, failed_step="finish", error=f"{type(exc).__name__}: {exc}")
        return settled

    def _compensate(self, batch: Batch, steps: list[str], failed_step: str, error: str) -> Batch:
        for step in reversed(steps):
            self._undo(step, batch)  # an exception here leaves the batch started: the next run retries
        failed = replace(batch, status="failed", failed_step=failed_step, error=error[:300])
        self.store.finish(failed)
        return failed
