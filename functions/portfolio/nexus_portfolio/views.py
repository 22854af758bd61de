"""What the portfolio API shows, built from the stores (ports; no boto3 here).

Portfolio totals: ``cash`` is trade-date cash (``AccountsTable.cash``), ``available`` what open
buy orders have not reserved, ``reserved = cash - available``; per position the market value and
unrealized P&L at the symbol's last trade price (cost when it never traded); ``equity = cash +
sum of market values``. USD figures are shown to the cent, ROUND_HALF_EVEN (display only).

Settled and unsettled: what the trades not settled yet will still move is the sum of their open
(``pending`` or ``settling``) settlement obligations: ``unsettled_cash`` (signed: > 0 the account
is still to receive it) and, per position, ``unsettled_quantity``; the settled part is the rest
(``settled_cash = cash - unsettled_cash``, ``settled_quantity = quantity - unsettled_quantity``),
as the ledger's ``cash``/``pending_cash`` and ``securities``/``pending_securities`` accounts
split them (fees are paid on trade date, from settled cash). ``withdrawable`` is what a
withdrawal may take now (``nexus_portfolio.funding``): ``available`` less the proceeds of sales not
settled yet.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any, Protocol

from nexus_common.errors import NotFound, ValidationFailed
from nexus_common.events import iso
from nexus_common.money import fmt, quantize_usd
from pydantic import BaseModel, ConfigDict, Field

from nexus_portfolio.funding import AccountCash, receivable, withdrawable
from nexus_portfolio.ledger import Entry
from nexus_portfolio.positions import Position
from nexus_portfolio.settlement import Batch, Obligation

ZERO = Decimal(0)
SETTLEMENT_STATUSES = ("pending", "settling", "settled")


class LedgerQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str | None = Field(default=None, alias="from", max_length=40)
    to: str | None = Field(default=None, max_length=40)
    limit: int = Field(default=500, ge=1, le=1000)

    def bounds(self) -> tuple[str, str]:
        """Sort-key bounds: entry keys start with the ISO instant (``...Z#id``). A ``from``
        after ``to`` is 400 ``invalid_range`` (as the candles route answers)."""
        start, end = _moment(self.from_, "from"), _moment(self.to, "to")
        if start is not None and end is not None and start > end:
            raise ValidationFailed("invalid_range", "from must not be after to", "from")
        return (iso(start) if start else "0000"), (iso(end) if end else "9999") + "~"


def _moment(text: str | None, field: str) -> datetime | None:
    """An ISO instant with an offset, or a date: its first (``from``) or last (``to``) instant."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time.min if field == "from" else time.max, UTC)
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed("invalid_field", f"{field} must be an ISO date or instant", field) from None
    if parsed.tzinfo is None:
        raise ValidationFailed("invalid_field", f"{field} needs a time zone (e.g. Z)", field)
    return parsed


class NoQuery(BaseModel):
    """The query of a route that takes none: any parameter is 400 ``unknown_field``."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class SettlementsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    status: str | None = None

    def check(self) -> str | None:
        if self.status is not None and self.status not in SETTLEMENT_STATUSES:
            allowed = ", ".join(SETTLEMENT_STATUSES)
            raise ValidationFailed("invalid_field", f"status must be one of: {allowed}", "status")
        return self.status


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
