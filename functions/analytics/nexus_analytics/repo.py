"""Data access of the analytics service (DynamoDB through the shared toolkit).

* ``PriceHistoryTable`` (pk ``symbol``, sk ``day`` = ``YYYY-MM-DD``, the exchange's session
  date): ``close`` and optionally ``open, high, low, volume``; ``source`` = candles | import |
  demo. Written with ``BatchWriteItem``: a bar's key is its identity, so writing it again writes
  the same item (the closing run and an import may both write a day; the last one wins).
* ``ValuationsTable`` (pk ``account_id``, sk ``day``): ``cash, positions_value, equity, flows``
  and ``positions`` (symbol -> quantity and close), one item per account and session, written
  by the closing run (again on a re-run: the same item).
* Reads of the platform's own tables: the account item's ``cash``, the positions of an account,
  the last trade of a symbol, the instruments, the day's deposits and withdrawals in the
  journal, and the ``1d`` candles.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from boto3.dynamodb.conditions import Key
from nexus_common.calendar import EXCHANGE_TZ
from nexus_common.candle_items import copy_of, counted, live_key, series_id
from nexus_common.dynamo import LazyTable, conditional_write, paginate
from nexus_common.dynamo_batch import batch_get, batch_put
from nexus_common.events import iso
from nexus_common.parallel import run_all

from nexus_analytics.ports import Holdings, PriceBar, Valuation

FLOW_KINDS: Final = ("deposit", "withdrawal")
_OPTIONAL: Final = ("open", "high", "low", "volume")


def _dec(value: Any) -> Decimal:
    return Decimal(str(value))


def bar_to_item(bar: PriceBar) -> dict[str, Any]:
    item: dict[str, Any] = {"symbol": bar.symbol, "day": bar.day.isoformat(), "close": bar.close, "source": bar.source}
    for name in _OPTIONAL:
        value = getattr(bar, name)
        if value is not None:
            item[name] = value
    return item


def bar_from_item(item: dict[str, Any]) -> PriceBar:
    optional = {name: _dec(item[name]) if name in item else None for name in _OPTIONAL}
    return PriceBar(
        symbol=str(item["symbol"]),
        day=date.fromisoformat(str(item["day"])),
        close=_dec(item["close"]),
        source=str(item.get("source", "import")),
        **optional,
    )


class DynamoPriceHistory(LazyTable):
    def put_many(self, bars: Iterable[PriceBar]) -> int:
        return batch_put(self.table, (bar_to_item(b) for b in bars), ("symbol", "day"))

    def bars(self, symbol: str, start: date, end: date) -> list[PriceBar]:
        items = paginate(
            self.table.query,
            KeyConditionExpression=Key("symbol").eq(symbol) & Key("day").between(start.isoformat(), end.isoformat()),
        )
        return [bar_from_item(item) for item in items]

    def closes(self, symbol: str, start: date, end: date) -> list[tuple[date, Decimal]]:
        items = paginate(
            self.table.query,
            KeyConditionExpression=Key("symbol").eq(symbol) & Key("day").between(start.isoformat(), end.isoformat()),
            ProjectionExpression="#d, #c",
            ExpressionAttributeNames={"#d": "day", "#c": "close"},
        )
        return [(date.fromisoformat(str(i["day"])), _dec(i["close"])) for i in items]

    def last_close_on_or_before(self, symbol: str, day: date) -> tuple[date, Decimal] | None:
        page = self.table.query(
            KeyConditionExpression=Key("symbol").eq(symbol) & Key("day").lte(day.isoformat()),
            ScanIndexForward=False,
            Limit=1,
        )
        items = page.get("Items", [])
        return (date.fromisoformat(str(items[0]["day"])), _dec(items[0]["close"])) if items else None

    def has_symbol(self, symbol: str) -> bool:
        page = self.table.query(KeyConditionExpression=Key("symbol").eq(symbol), Limit=1, ProjectionExpression="#d",
                                ExpressionAttributeNames={"#d": "day"})
        return bool(page.get("Items"))


class CachedPriceHistory(DynamoPriceHistory):
    """The price history of a warm API function: a symbol's closes are read once per ``ttl``
    seconds and later requests inside the range read from memory. A past close changes only at
    the closing run or by an import, so an answer is at most ``ttl`` seconds behind the table;
    ``ttl`` 0 reads every time. Requests of one function run in threads: the cache is locked."""

    def __init__(self, name: str, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name)
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[date, date, float, list[tuple[date, Decimal]]]] = {}

    def closes(self, symbol: str, start: date, end: date) -> list[tuple[date, Decimal]]:
        now = self.clock()
        with self._lock:
            held = self._cache.get(symbol)
        if held is not None and now - held[2] < self.ttl and held[0] <= start and end <= held[1]:
            return [close for close in held[3] if start <= close[0] <= end]
        found = super().closes(symbol, start, end)
        if self.ttl > 0:
            with self._lock:
                self._cache[symbol] = (start, end, now, found)
        return found


def valuation_to_item(valuation: Valuation) -> dict[str, Any]:
    return {
        "account_id": valuation.account_id,
        "day": valuation.day.isoformat(),
        "cash": valuation.cash,
        "positions_value": valuation.positions_value,
        "equity": valuation.equity,
        "flows": valuation.flows,
        "positions": {s: {"quantity": q, "close": c} for s, (q, c) in sorted(valuation.positions.items())},
    }


def valuation_from_item(item: dict[str, Any]) -> Valuation:
    positions = {
        str(s): (_dec(p["quantity"]), _dec(p["close"])) for s, p in dict(item.get("positions") or {}).items()
    }
    return Valuation(
        account_id=str(item["account_id"]),
        day=date.fromisoformat(str(item["day"])),
        cash=_dec(item["cash"]),
        positions_value=_dec(item["positions_value"]),
        flows=_dec(item.get("flows", 0)),
        positions=positions,
    )


class DynamoValuations(LazyTable):
    def put_many(self, valuations: Iterable[Valuation]) -> int:
        return batch_put(self.table, (valuation_to_item(v) for v in valuations), ("account_id", "day"))

    def of_account(self, account_id: str, start: date, end: date) -> list[Valuation]:
        items = paginate(
            self.table.query,
            KeyConditionExpression=Key("account_id").eq(account_id)
            & Key("day").between(start.isoformat(), end.isoformat()),
        )
        return [valuation_from_item(item) for item in items]


class DynamoAccountsSource:
    """The platform's state the analytics read (never written here)."""

    def __init__(
        self,
        accounts_table: str,
        positions_table: str,
        trades_table: str | None,
        instruments_table: str | None,
        ledger_table: str | None = None,
    ) -> None:
        self.accounts = LazyTable(accounts_table)
        self.positions = LazyTable(positions_table)
        self.trades = LazyTable(trades_table) if trades_table else None
        self.instruments = LazyTable(instruments_table) if instruments_table else None
        self.ledger = LazyTable(ledger_table) if ledger_table else None

    def holdings(self, account_id: str) -> Holdings | None:
        item = self.accounts.table.get_item(
            Key={"account_id": account_id}, ProjectionExpression="account_id, cash"
        ).get("Item")
        if not item:
            return None
        items = paginate(
            self.positions.table.query,
            KeyConditionExpression=Key("account_id").eq(account_id),
            ProjectionExpression="symbol, quantity",
        )
        quantities = {str(i["symbol"]): _dec(i["quantity"]) for i in items if _dec(i.get("quantity", 0)) != 0}
        return Holdings(account_id, _dec(item.get("cash", 0)), quantities)

    def all_holdings(self) -> list[Holdings]:
        """Every account with its positions: one scan of each table (the closing run)."""
        by_account: dict[str, dict[str, Decimal]] = {}
        for item in paginate(self.positions.table.scan, ProjectionExpression="account_id, symbol, quantity"):
            quantity = _dec(item.get("quantity", 0))
            if quantity != 0:
                by_account.setdefault(str(item["account_id"]), {})[str(item["symbol"])] = quantity
        accounts = paginate(self.accounts.table.scan, ProjectionExpression="account_id, cash")
        return [
            Holdings(str(a["account_id"]), _dec(a.get("cash", 0)), by_account.get(str(a["account_id"]), {}))
            for a in accounts
        ]

    def last_prices(self, symbols: Sequence[str]) -> dict[str, Decimal]:
        if self.trades is None:
            raise RuntimeError("no trades table configured")
        trades = self.trades.table

        def last(symbol: str) -> Decimal | None:
            page = trades.query(KeyConditionExpression=Key("symbol").eq(symbol), ScanIndexForward=False, Limit=1)
            items = page.get("Items", [])
            return _dec(items[0]["price"]) if items else None

        ordered = sorted(set(symbols))  # one Query per symbol, sent together
        found = run_all([functools.partial(last, s) for s in ordered])
        return {s: price for s, price in zip(ordered, found, strict=True) if price is not None}

    def symbols(self) -> list[str]:
        if self.instruments is None:
            raise RuntimeError("no instruments table configured")
        items = paginate(self.instruments.table.scan, ProjectionExpression="symbol")
        return sorted(str(i["symbol"]) for i in items)

    def flows(self, account_id: str, day: date) -> Decimal:
        """Net deposits (+) and withdrawals (-) of the account's cash on the exchange date ``day``."""
        if self.ledger is None:
            raise RuntimeError("no ledger table configured")
        start = datetime(day.year, day.month, day.day, tzinfo=EXCHANGE_TZ)
        end = start + timedelta(days=1)
        items = paginate(
            self.ledger.table.query,
            KeyConditionExpression=Key("account_id").eq(account_id)
            & Key("entry_key").between(iso(start), iso(end)),
        )
        total = Decimal("0.00")
        for item in items:
            if item.get("kind") not in FLOW_KINDS:
                continue
            for leg in item.get("legs", []):
                if leg.get("book") == account_id and leg.get("account") == "cash" and leg.get("asset") == "USD":
                    total += _dec(leg["amount"])
        return total


class DynamoDailyCandles(LazyTable):
    """The ``1d`` candles of the market data service (the UTC day holding the session). A day's
    candle is its own item once the next day's first trade closed it; until then it is the ``1d``
    entry of the symbol's live item (``nexus_common.candle_items``). Both are read in one request;
    when both hold the day, the one that counted further wins."""

    def daily(self, symbols: Sequence[str], day: date) -> list[PriceBar]:
        bucket = f"{day.isoformat()}T00:00:00Z"
        keys = []
        for symbol in sorted(set(symbols)):
            for series, sort_key in ((series_id(symbol, "1d"), bucket), live_key(symbol)):
                keys.append({"series": series, "bucket": sort_key})
        found: dict[str, Mapping[str, Any]] = {}
        for item in batch_get(self.table, keys) if keys else []:
            candle = copy_of(item, "1d", bucket)
            if candle is None:
                continue
            symbol = str(item["symbol"])
            if symbol not in found or counted(candle) > counted(found[symbol]):
                found[symbol] = candle
        return [
            PriceBar(
                symbol=symbol,
                day=day,
                close=_dec(c["close"]),
                open=_dec(c["open"]),
                high=_dec(c["high"]),
                low=_dec(c["low"]),
                volume=_dec(c["volume"]),
                source="candles",
            )
            for symbol, c in sorted(found.items())
        ]


class DynamoPushThrottle(LazyTable):
    """One push slot per channel in the connections table (``THROTTLE#<channel>`` / ``THROTTLE``,
    gone by TTL): ``claim`` takes it when the last push is at least ``interval`` seconds old."""

    def claim(self, channel: str, now: datetime, interval: int) -> bool:
        stamp = int(now.timestamp() * 1000)
        return conditional_write(
            self.table.update_item,
            Key={"pk": f"THROTTLE#{channel}", "sk": "THROTTLE"},
            UpdateExpression="SET pushed_at = :now, expires_at = :ttl",
            ConditionExpression="attribute_not_exists(pushed_at) OR pushed_at <= :cutoff",
            ExpressionAttributeValues={
                ":now": stamp,
                ":cutoff": stamp - interval * 1000,
                ":ttl": int(now.timestamp()) + 3600,
            },
        )
