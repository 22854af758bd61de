"""``nexus simulate`` and ``make day`` trade around the market's price: the last trade, else the
mid of the best bid and offer (``make run``'s market maker quotes every demo symbol). Pairs priced
away from the quotes traded with them, moved the last trade there, and every pair after fell
outside the price collar: 19,994 of 20,000 orders were refused."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from nexus import cli_money


class Market:
    """``GET /v1/markets/{symbol}/ticker`` answers, one per call (the last repeats), on a clock
    that the waits move."""

    def __init__(self, answers: list[dict[str, Any]]) -> None:
        self.answers = answers
        self.calls = 0
        self.now = 0.0

    def http(self, api_url: str, key: str, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        assert (method, path) == ("GET", "/v1/markets/AAPL/ticker")
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        return 200, answer

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def price(market: Market, monkeypatch: pytest.MonkeyPatch) -> Decimal | None:
    monkeypatch.setattr(cli_money, "_http", market.http)
    monkeypatch.setattr(cli_money.time, "sleep", market.sleep)
    return cli_money._market_price("http://api", "key", "AAPL", wait=10.0, clock=lambda: market.now)


QUOTED = {"bid": {"price": "149.98", "quantity": "100"}, "ask": {"price": "150.03", "quantity": "100"}, "last": None}


def test_the_last_trade_is_the_market_price(monkeypatch: pytest.MonkeyPatch) -> None:
    market = Market([{**QUOTED, "last": {"price": "151.20", "quantity": "3"}}])
    assert price(market, monkeypatch) == Decimal("151.20")


def test_without_a_trade_the_mid_of_the_best_bid_and_offer_is(monkeypatch: pytest.MonkeyPatch) -> None:
    assert price(Market([QUOTED]), monkeypatch) == Decimal("150.00")  # (149.98 + 150.03) / 2, to the cent


def test_a_market_maker_that_has_not_quoted_yet_is_waited_for(monkeypatch: pytest.MonkeyPatch) -> None:
    one_sided = {"bid": QUOTED["bid"], "ask": None, "last": None}
    market = Market([{"bid": None, "ask": None, "last": None}, one_sided, QUOTED])
    assert price(market, monkeypatch) == Decimal("150.00")
    assert market.calls == 3 and market.now == 1.0


def test_a_symbol_nobody_trades_or_quotes_has_no_market_price_after_the_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    market = Market([{"bid": None, "ask": None, "last": None}])
    assert price(market, monkeypatch) is None
    assert market.now >= 10.0 and market.calls == 21


def test_a_day_written_to_a_log_prints_a_line_each_tenth_of_its_pairs(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN the progress of a 25-pair day whose output is not a terminal, on a clock of its own
    now = [100.0]
    advance = cli_money._progress_lines(25, clock=lambda: now[0])
    # WHEN the pairs are done, a second apart
    for _ in range(25):
        now[0] += 1.0
        advance()
    # THEN a line every 2 pairs (a tenth, rounded down) and one for the last
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "trading: 2/25 pairs, 2 s" and lines[-1] == "trading: 25/25 pairs, 25 s"
    assert len(lines) == 13


def test_the_day_is_reconciled_once_the_platform_says_its_consumers_are_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a platform whose consumers are idle only when ``drained`` returns, and a day of 3 pairs
    import nexus.local.demo as demo

    steps: list[str] = []
    monkeypatch.setattr(demo, "create_account", lambda table, name, cash: {"api_key": f"key-{name}"})
    monkeypatch.setattr(cli_money, "_market_price", lambda *args, **kwargs: Decimal("100.00"))
    monkeypatch.setattr(cli_money, "_http", lambda *args, **kwargs: (steps.append("order"), (202, {}))[1])

    def reconcile(table: Any, wait: float) -> cli_money.Reconciliation:
        steps.append("reconcile")
        return cli_money.Reconciliation()

    monkeypatch.setattr(cli_money, "reconcile_until_clean", reconcile)
    # WHEN the day runs
    result = cli_money.simulate_day(None, "http://api", 2, 3, 1, 7, drained=lambda: steps.append("drained"))
    # THEN every order is sent, then the platform drains, then reconciliation runs once
    assert steps == ["order"] * 6 + ["drained", "reconcile"]
    assert result.orders_sent == 6 and result.refused == 0
    assert result.idle_seconds is not None and 0 <= result.idle_seconds <= result.settle_seconds
    # AND a platform that cannot tell (``nexus simulate`` elsewhere) is reconciled from the last order on
    steps.clear()
    assert cli_money.simulate_day(None, "http://api", 2, 1, 1, 7).idle_seconds is None
    assert steps == ["order", "order", "reconcile"]
