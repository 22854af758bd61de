"""The portfolio service's use cases, over the ports (``ports.py``); no boto3 here.

- post-trade: ``apply_events`` / ``apply_batch`` (see ``posttrade``'s docstring for the rule);
- settlement: the scheduled run, a saga per netted batch (``Settlement``; see ``settlement``'s
  docstring for the steps and their compensation);
- reads: what the portfolio API shows (``PortfolioReader``; see ``views``' docstring).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from nexus_common.errors import NotFound
from nexus_common.fees import FeeSchedule
from nexus_common.money import fmt, quantize_usd

from nexus_portfolio.funding import AccountCash, receivable, withdrawable
from nexus_portfolio.ledger import reversal
from nexus_portfolio.ports import (
    Accounts,
    BatchEntryWriter,
    BatchObligationWriter,
    BatchPositionStore,
    EntryWriter,
    Journal,
    JournalReader,
    ObligationWriter,
    Positions,
    PositionStore,
    Prices,
    SettlementReader,
    SettlementStore,
)
from nexus_portfolio.positions import Position, apply_fill
from nexus_portfolio.posttrade import Fill, fills_of, plan_batch, position_keys
from nexus_portfolio.settlement import Batch, net
from nexus_portfolio.views import LedgerQuery, SettlementsQuery

ZERO = Decimal(0)


class StaleWrite(RuntimeError):
    """The position changed between read and write (another writer): the record is retried."""


def apply_events(
    events: Iterable[Any],
    positions: PositionStore,
    journal: EntryWriter,
    obligations: ObligationWriter,
    fees: FeeSchedule,
) -> int:
    """Apply trade and venue_fill events in order; returns how many positions were written."""
    written = 0
    for event in events:
        groups: dict[tuple[str, str], list[Fill]] = {}
        for fill in fills_of(event, fees):
            groups.setdefault((fill.account_id, fill.symbol), []).append(fill)
        for (account_id, symbol), fills in groups.items():
            current = positions.get(account_id, symbol) or Position(account_id, symbol)
            if current.last_seq is not None and current.last_seq >= event.seq:
                continue  # seen: a redelivery, or older than what the position holds
            position = current
            for fill in fills:
                journal.post(fill.entry())
                obligations.add(fill.obligation())
                position = apply_fill(position, fill.signed_quantity, fill.price, fill.fee, fill.seq)
            if not positions.save(position, current.last_seq):
                raise StaleWrite(f"position {account_id}/{symbol} changed while applying {event.event_id}")
            written += 1
    return written


def apply_batch(
    events: list[Any],
    positions: BatchPositionStore,
    journal: BatchEntryWriter,
    obligations: BatchObligationWriter,
    fees: FeeSchedule,
) -> int:
    """Apply a batch of events with one write per position; returns how many were written."""
    keys = position_keys(events)
    if not keys:
        return 0
    found = positions.get_many(keys)
    plan = plan_batch(events, found, fees)
    journal.post_many(plan.entries)
    obligations.add_many(plan.obligations)
    for position, previous_seq in plan.positions:
        if positions.save(position, previous_seq):
            continue
        now = positions.get(position.account_id, position.symbol)
        if now != position:  # equal: this very write went through and a retry of it was refused
            raise StaleWrite(f"position {position.account_id}/{position.symbol} changed while applying a batch")
    return len(plan.positions)


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


class PortfolioReader:
    def __init__(
        self,
        accounts: Accounts,
        positions: Positions,
        prices: Prices,
        journal: JournalReader,
        settlements: SettlementReader,
    ) -> None:
        self.accounts = accounts
        self.positions_store = positions
        self.prices = prices
        self.journal = journal
        self.settlements_store = settlements

    def _priced(self, account_id: str) -> list[tuple[Position, Decimal | None]]:
        held = sorted(self.positions_store.of_account(account_id), key=lambda p: p.symbol)
        return [(position, self.prices.last(position.symbol)) for position in held]

    def positions(self, account_id: str) -> list[dict[str, Any]]:
        return [position.to_wire(price) for position, price in self._priced(account_id)]

    def portfolio(self, account_id: str) -> dict[str, Any]:
        account = self.accounts.get(account_id)
        if account is None:
            raise NotFound("account_not_found", "no such account")
        cash = Decimal(str(account.get("cash", 0)))
        available = Decimal(str(account.get("available_cash", cash)))
        priced = self._priced(account_id)
        market_value = sum((p.market_value(price) for p, price in priced), ZERO)
        unrealized = sum((p.unrealized_pnl(price) for p, price in priced), ZERO)
        realized = sum((p.realized_pnl for p, _ in priced), ZERO)
        fees = sum((p.fees for p, _ in priced), ZERO)
        unsettled_cash = ZERO
        unsettled: dict[str, Decimal] = {}
        open_obligations = self.settlements_store.open_of_account(account_id)
        for obligation in open_obligations:
            unsettled_cash += obligation.cash
            unsettled[obligation.symbol] = unsettled.get(obligation.symbol, ZERO) + obligation.quantity
        positions = []
        for position, price in priced:
            pending = unsettled.get(position.symbol, ZERO)
            positions.append({
                **position.to_wire(price),
                "settled_quantity": fmt(position.quantity - pending),
                "unsettled_quantity": fmt(pending),
            })
        return {
            "account_id": account_id,
            "currency": account.get("currency", "USD"),
            "status": account.get("status"),
            "trading_enabled": account.get("trading_enabled", True) is not False,
            "cash": fmt(quantize_usd(cash)),
            "reserved": fmt(quantize_usd(cash - available)),
            "available": fmt(quantize_usd(available)),
            "settled_cash": fmt(quantize_usd(cash - unsettled_cash)),
            "unsettled_cash": fmt(quantize_usd(unsettled_cash)),
            "withdrawable": fmt(quantize_usd(withdrawable(
                AccountCash(account_id, cash, available), receivable([o.cash for o in open_obligations])))),
            "positions": positions,
            "totals": {
                "market_value": fmt(quantize_usd(market_value)),
                "realized_pnl": fmt(quantize_usd(realized)),
                "unrealized_pnl": fmt(quantize_usd(unrealized)),
                "fees": fmt(quantize_usd(fees)),
                "equity": fmt(quantize_usd(cash + market_value)),
            },
        }

    def ledger(self, account_id: str, query: LedgerQuery) -> list[dict[str, Any]]:
        start, end = query.bounds()
        return [entry.to_wire() for entry in self.journal.of_account(account_id, start, end, query.limit)]

    def settlements(self, account_id: str, query: SettlementsQuery) -> dict[str, Any]:
        status = query.check()
        obligations, batches = self.settlements_store.of_account(account_id)
        shown = [o for o in obligations if status is None or o.status == status]
        return {
            "obligations": [o.to_wire() for o in sorted(shown, key=lambda o: (o.settle_date, o.item_id))],
            "batches": [b.to_wire() for b in sorted(batches, key=lambda b: b.batch_id)],
        }
