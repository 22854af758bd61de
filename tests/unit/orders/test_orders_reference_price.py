"""The price collar's reference, kept per symbol for a bounded time (``KeptLastTrade``), with an
injected clock. GIVEN / WHEN / THEN."""

from __future__ import annotations

from decimal import Decimal

import pytest
from nexus_orders.service import KeptLastTrade

D = Decimal


class Trades:
    """A ``MarketReference`` that counts its reads: the last trade per symbol, and a best ask."""

    def __init__(self) -> None:
        self.last: dict[str, Decimal] = {}
        self.reads: list[str] = []
        self.failing = False

    def last_trade(self, symbol: str) -> Decimal | None:
        self.reads.append(symbol)
        if self.failing:
            raise ConnectionError("the trades table did not answer")
        return self.last.get(symbol)

    def best_ask(self, symbol: str) -> Decimal | None:
        self.reads.append(f"ask {symbol}")
        return D("101.00")


def test_a_symbols_last_trade_is_read_once_per_bound_and_each_symbol_apart() -> None:
    # GIVEN trades in two symbols, kept for one second
    trades, now = Trades(), [10.0]
    trades.last = {"AAPL": D("100.00"), "MSFT": D("300.00")}
    kept = KeptLastTrade(trades, 1.0, clock=lambda: now[0])
    # WHEN orders in both symbols ask for the reference within the second
    seen = [kept.last_trade("AAPL"), kept.last_trade("AAPL"), kept.last_trade("MSFT")]
    trades.last["AAPL"] = D("105.00")  # a trade the kept price has not seen yet
    now[0] += 0.999
    seen.append(kept.last_trade("AAPL"))
    # THEN each symbol was read once, and the kept price answered within the bound
    assert seen == [D("100.00"), D("100.00"), D("300.00"), D("100.00")]
    assert trades.reads == ["AAPL", "MSFT"]
    # WHEN the bound has passed THEN the next order reads the new trade
    now[0] += 0.001
    assert kept.last_trade("AAPL") == D("105.00") and trades.reads == ["AAPL", "MSFT", "AAPL"]


def test_no_trade_yet_is_not_kept_so_the_first_trade_collars_the_next_order() -> None:
    # GIVEN a symbol that has not traded
    trades, now = Trades(), [0.0]
    kept = KeptLastTrade(trades, 1.0, clock=lambda: now[0])
    assert kept.last_trade("AAPL") is None
    # WHEN it trades, within the bound THEN the next order sees that trade at once
    trades.last["AAPL"] = D("99.50")
    assert kept.last_trade("AAPL") == D("99.50") and trades.reads == ["AAPL", "AAPL"]


def test_a_failed_read_is_raised_and_not_kept_and_the_best_ask_is_always_read() -> None:
    # GIVEN a kept price that has expired, and a table that does not answer
    trades, now = Trades(), [0.0]
    trades.last["AAPL"] = D("100.00")
    kept = KeptLastTrade(trades, 1.0, clock=lambda: now[0])
    kept.last_trade("AAPL")
    now[0] += 1.0
    trades.failing = True
    # WHEN an order needs the reference THEN the failure reaches the caller (a 503 there)
    with pytest.raises(ConnectionError):
        kept.last_trade("AAPL")
    # AND nothing stale was kept in its place: the next read goes to the table again
    trades.failing = False
    trades.last["AAPL"] = D("101.00")
    assert kept.last_trade("AAPL") == D("101.00")
    # AND the best ask (market buys) is never kept
    assert [kept.best_ask("AAPL"), kept.best_ask("AAPL")] == [D("101.00"), D("101.00")]
    assert trades.reads[-2:] == ["ask AAPL", "ask AAPL"]
