"""T+2 settlement: obligations from fills, netted per account, symbol and date, settled as a saga.

Pure domain (the obligations, batches and their netting); the saga itself is
``service.Settlement``, over two ports (``ports.SettlementStore``, ``ports.Journal``); no boto3 here.

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
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from nexus_common.events import iso
from nexus_common.money import fmt

from nexus_portfolio.ledger import Entry, settlement_entry


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
