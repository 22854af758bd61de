"""What the analytics service needs from the outside, and the values that cross that boundary.

No boto3 here: ``repo.py`` implements these ports over DynamoDB; the tests may use the same
repositories under moto.

* ``PriceBar``: one symbol's daily bar (close required; open/high/low/volume optional), the
  session date being the exchange's (New York) date.
* ``Valuation``: one account's end-of-day value: cash + sum(quantity x close), and the day's
  external flows (deposits +, withdrawals -), so returns can be time-weighted.
* ``Holdings``: what an account holds now (cash and quantities), for intraday figures.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Protocol


@dataclass(frozen=True)
class PriceBar:
    symbol: str
    day: date
    close: Decimal
    open: Decimal | None = None
    high: Decimal | None = None
    low: Decimal | None = None
    volume: Decimal | None = None
    source: str = "import"  # candles | import | demo


@dataclass(frozen=True)
class Valuation:
    account_id: str
    day: date
    cash: Decimal
    positions_value: Decimal
    flows: Decimal = Decimal("0.00")  # net external flows of the day (deposits +, withdrawals -)
    positions: Mapping[str, tuple[Decimal, Decimal]] = field(default_factory=dict)  # symbol -> (qty, close)

    @property
    def equity(self) -> Decimal:
        return self.cash + self.positions_value


@dataclass(frozen=True)
class Holdings:
    account_id: str
    cash: Decimal
    quantities: Mapping[str, Decimal]  # symbol -> signed quantity (non-zero only)


class PriceHistory(Protocol):
    def put_many(self, bars: Iterable[PriceBar]) -> int: ...

    def closes(self, symbol: str, start: date, end: date) -> list[tuple[date, Decimal]]: ...

    def last_close_on_or_before(self, symbol: str, day: date) -> tuple[date, Decimal] | None: ...


class Valuations(Protocol):
    def put_many(self, valuations: Iterable[Valuation]) -> int: ...

    def of_account(self, account_id: str, start: date, end: date) -> list[Valuation]: ...


class AccountsSource(Protocol):
    """The platform's own state: cash, positions, last trades, instruments, the day's flows."""

    def holdings(self, account_id: str) -> Holdings | None: ...

    def all_holdings(self) -> list[Holdings]: ...

    def last_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]: ...

    def symbols(self) -> list[str]: ...

    def flows(self, account_id: str, day: date) -> Decimal: ...


class DailyCandles(Protocol):
    def daily(self, symbols: Sequence[str], day: date) -> list[PriceBar]: ...
