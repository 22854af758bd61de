"""What the portfolio API shows: the query models and the rules of its figures (pure; the reads
themselves are ``service.PortfolioReader``, over the ports).

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

from nexus_common.errors import ValidationFailed
from nexus_common.events import iso
from pydantic import BaseModel, ConfigDict, Field

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
