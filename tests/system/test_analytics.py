"""Portfolio analytics end to end on the local platform (nexus up --demo, shared): a demo-like
account that bought two demo symbols reads its summary, VaR by the three methods, performance,
correlation and stress results over the seeded two years of closes; another trader cannot read it."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from helpers import eventually
from http_client import Api, resting_buy_price

pytestmark = pytest.mark.system

D = Decimal


@pytest.fixture(scope="module")
def holder(local_platform: Any) -> Iterator[tuple[str, Api, Api]]:
    """An account that bought 10 AMZN and 10 GOOGL from another one (both created here). Not AAPL
    or MSFT: the first-trade tests on the shared platform expect those untraded."""
    from nexus.local.demo import create_account

    seller = create_account(local_platform.table, "Analytics Seller", D("100000.00"))
    buyer = create_account(local_platform.table, "Analytics Buyer", D("100000.00"))
    sell_api = Api(local_platform.api_url, seller["api_key"])
    buy_api = Api(local_platform.api_url, buyer["api_key"])
    for symbol in ("AMZN", "GOOGL"):
        order = {"symbol": symbol, "type": "limit", "quantity": "10", "price": resting_buy_price(buy_api, symbol)}
        sell = sell_api.post("/v1/orders", {**order, "side": "sell"})
        assert sell.status == 202, sell.body
        path = f"/v1/orders/{sell.body['order']['order_id']}"
        eventually(lambda path=path: sell_api.get(path).body["order"]["status"], lambda s: s == "new")
        buy = buy_api.post("/v1/orders", {**order, "side": "buy"})
        assert buy.status == 202, buy.body
    held = eventually(
        lambda: {p["symbol"] for p in buy_api.get("/v1/positions").body["positions"] if D(p["quantity"]) == 10},
        lambda symbols: symbols >= {"AMZN", "GOOGL"},
    )
    assert held >= {"AMZN", "GOOGL"}
    yield buyer["account_id"], buy_api, sell_api


def test_the_summary_and_var_by_each_method(holder: tuple[str, Api, Api]) -> None:
    account_id, api, _ = holder
    # WHEN the buyer reads its summary and its VaR by each method
    summary = api.get("/v1/analytics/summary")
    # THEN its two positions at their last trades, 95 % and 99 % VaR over the seeded history
    assert summary.status == 200, summary.body
    body = summary.body
    assert body["account_id"] == account_id
    assert {p["symbol"] for p in body["positions"]} == {"AMZN", "GOOGL"}
    assert D(body["equity"]) == D(body["cash"]) + D(body["positions_value"])
    assert 0 < D(body["var_95"]["var"]) <= D(body["var_99"]["var"]) <= D(body["var_99"]["expected_shortfall"])
    assert body["var_99"]["observations"] == 250
    assert body["sharpe_1y"] is not None
    for method in ("historical", "parametric", "monte_carlo"):
        answer = api.get(f"/v1/analytics/var?method={method}&confidence=0.975&horizon_days=5")
        assert answer.status == 200, answer.body
        assert 0 < D(answer.body["var"]["var"]) <= D(answer.body["var"]["expected_shortfall"])
    # AND a confidence out of range is a 400 through the real edge
    bad = api.get("/v1/analytics/var?confidence=1.5")
    assert (bad.status, bad.body["error"]["field"]) == (400, "confidence")


def test_performance_correlation_decomposition_and_stress(holder: tuple[str, Api, Api]) -> None:
    _, api, _ = holder
    # WHEN the buyer reads its performance against AAPL, a correlation, its decomposition, a stress test
    performance = api.get("/v1/analytics/performance?benchmark=AAPL")
    correlation = api.get("/v1/analytics/correlation?symbols=AAPL,MSFT,GOOGL&lookback_days=120")
    decomposition = api.get("/v1/analytics/risk-decomposition?method=parametric&confidence=0.99")
    stress = api.post("/v1/analytics/stress", {"shocks": {"market_pct": "-10"}, "benchmark": "AAPL"})
    named = api.post("/v1/analytics/stress", {})
    # THEN each answers figures over the seeded history
    assert performance.status == 200, performance.body
    assert performance.body["basis"] == "holdings"  # no daily valuation yet: today's holdings at past closes
    assert performance.body["performance"]["beta"] is not None
    assert correlation.status == 200, correlation.body
    assert correlation.body["observations"][0][2] == 120
    assert decomposition.status == 200, decomposition.body
    parts = decomposition.body["decomposition"]
    assert sum(D(p["component_var"]) for p in parts["positions"]) == D(parts["total"])
    assert stress.status == 200, stress.body
    (custom,) = stress.body["results"]
    assert D(custom["result"]["total_pnl"]) < 0
    assert {r["scenario"] for r in named.body["results"]} >= {"gfc_2008_10_15", "covid_2020_03_16"}


def test_another_trader_cannot_read_the_account(holder: tuple[str, Api, Api]) -> None:
    account_id, _, seller = holder
    # WHEN the seller (a trader) asks the buyer's summary
    answer = seller.get(f"/v1/analytics/summary?account_id={account_id}")
    # THEN it is refused
    assert answer.status in (403, 404)
    assert answer.body["error"]["code"] in ("forbidden", "not_found")
