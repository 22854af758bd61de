"""The analytics routes over moto tables built from the template: figures from the account's
holdings, the last trades and the stored closes; bad inputs (400), too little history (422),
an empty portfolio (zeros) and whose figures a caller may read (403 for another account).

The tables are built and filled once for the module (the routes only read; the one test that
writes valuations writes them for an account no other test reads the performance of)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from analytics_world import moto_platform
from lambda_events import call, rest_event
from nexus_analytics import api as analytics_api
from nexus_analytics.ports import PriceBar, Valuation
from nexus_analytics.repo import DynamoPriceHistory, DynamoValuations
from nexus_analytics.synthetic import business_days_until, synthetic_history

NOW = datetime(2026, 3, 13, 20, 0, tzinfo=UTC)  # Friday 16:00 in New York
TODAY = date(2026, 3, 13)
CASH = Decimal("100000.00")
LAST = {"AAPL": Decimal("190.00"), "MSFT": Decimal("300.00")}
HELD = {"AAPL": Decimal(100), "MSFT": Decimal(50)}


@pytest.fixture(scope="module")
def world() -> Iterator[dict[str, str]]:
    with pytest.MonkeyPatch.context() as monkeypatch, moto_platform(monkeypatch, "AnalyticsApiFunction") as platform:
        monkeypatch.setattr(analytics_api, "utc_now", lambda: NOW)
        env = dict(platform.functions["AnalyticsApiFunction"].environment)
        _fill(env)
        yield env


def _fill(env: dict[str, str]) -> None:
    ddb = boto3.resource("dynamodb", region_name="us-east-1")
    for symbol in ("AAPL", "MSFT", "GOOGL", "AMZN", "NEWCO"):
        ddb.Table(env["INSTRUMENTS_TABLE"]).put_item(Item={"symbol": symbol, "tick_size": Decimal("0.01")})
    for account, cash in (("acc_a", CASH), ("acc_b", CASH), ("acc_empty", Decimal("5000.00")), ("acc_new", CASH)):
        ddb.Table(env["ACCOUNTS_TABLE"]).put_item(Item={"account_id": account, "cash": cash, "status": "active"})
    for symbol, quantity in HELD.items():
        ddb.Table(env["POSITIONS_TABLE"]).put_item(Item={"account_id": "acc_a", "symbol": symbol, "quantity": quantity})
        ddb.Table(env["TRADES_TABLE"]).put_item(Item={"symbol": symbol, "seq": 7, "price": LAST[symbol]})
    ddb.Table(env["POSITIONS_TABLE"]).put_item(Item={"account_id": "acc_new", "symbol": "NEWCO", "quantity": 10})
    prices = DynamoPriceHistory(env["PRICE_HISTORY_TABLE"])
    prices.put_many(synthetic_history(TODAY - timedelta(days=1), ["AAPL", "MSFT", "GOOGL"], days=260))
    # NEWCO listed eleven sessions ago: eleven closes, ten daily returns
    sessions = business_days_until(TODAY - timedelta(days=1), 11)
    prices.put_many(PriceBar("NEWCO", day, Decimal(20 + i)) for i, day in enumerate(sessions))


def get(path: str, query: dict[str, str] | None = None, account: str = "acc_a", roles: str | None = None) -> Any:
    event = rest_event("GET", path, account_id=account, query=query)
    if roles is not None:
        event["requestContext"]["authorizer"]["roles"] = roles
    return call(analytics_api.app, event)


def post(path: str, body: Any, account: str = "acc_a") -> Any:
    return call(analytics_api.app, rest_event("POST", path, account_id=account, body=body))


def test_the_summary_values_the_holdings_at_the_last_trades_with_var_es_and_a_year_of_performance(
    world: dict[str, str],
) -> None:
    # GIVEN an account with 100 AAPL (last 190) and 50 MSFT (last 300), 100,000 cash, and 300
    # sessions of closes
    # WHEN it reads its summary
    status, body = get("/v1/analytics/summary")
    # THEN equity is cash + positions at the last trades, exactly
    assert status == 200, body
    assert Decimal(body["equity"]) == Decimal("134000.00")
    assert Decimal(body["gross_exposure"]) == Decimal("34000.00")
    assert {p["symbol"]: Decimal(p["value"]) for p in body["positions"]} == {
        "AAPL": Decimal("19000.00"),
        "MSFT": Decimal("15000.00"),
    }
    # AND 1-day historical VaR at 95 % and 99 % over 250 returns, ES at least VaR, 99 % above 95 %
    v95, v99 = body["var_95"], body["var_99"]
    assert (v95["method"], v95["horizon_days"], v95["observations"]) == ("historical", 1, 250)
    assert Decimal("0") < Decimal(v95["var"]) <= Decimal(v99["var"]) <= Decimal(v99["expected_shortfall"])
    assert Decimal(v95["var"]) <= Decimal(v95["expected_shortfall"])
    # AND a Sharpe ratio and a drawdown of today's holdings over the past year (no valuations yet)
    assert body["performance_basis"] == "holdings"
    assert body["sharpe_1y"] is not None
    assert Decimal(body["max_drawdown_1y"]) <= 0


def test_an_empty_portfolio_answers_zeros(world: dict[str, str]) -> None:
    # GIVEN an account with cash only
    # WHEN it reads its summary and its VaR
    status, body = get("/v1/analytics/summary", account="acc_empty")
    var_status, var_body = get("/v1/analytics/var", {"method": "parametric"}, account="acc_empty")
    # THEN zeros, not an error
    assert (status, var_status) == (200, 200)
    assert Decimal(body["equity"]) == Decimal("5000.00")
    assert body["positions"] == []
    assert Decimal(body["var_95"]["var"]) == Decimal(body["var_99"]["expected_shortfall"]) == 0
    assert Decimal(var_body["var"]["var"]) == 0


@pytest.mark.parametrize("method", ["historical", "parametric", "monte_carlo"])
def test_var_by_each_method_is_a_positive_loss_with_es_at_least_var(world: dict[str, str], method: str) -> None:
    # GIVEN the account with two positions
    # WHEN it asks the 10-day 97.5 % VaR by a method
    status, body = get("/v1/analytics/var", {"method": method, "confidence": "0.975", "horizon_days": "10"})
    # THEN a positive USD loss, ES >= VaR, and the percentage of equity
    assert status == 200, body
    figure = body["var"]
    assert (figure["method"], Decimal(figure["confidence"]), figure["horizon_days"]) == (method, Decimal("0.975"), 10)
    assert 0 < Decimal(figure["var"]) <= Decimal(figure["expected_shortfall"])
    percent = (Decimal(figure["var"]) * 100 / Decimal("134000.00")).quantize(Decimal("0.0001"))
    assert Decimal(figure["var_pct"]) == percent


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ({"confidence": "0.5"}, "invalid_field", "confidence"),
        ({"confidence": "1"}, "invalid_field", "confidence"),
        ({"confidence": "1e400"}, "invalid_decimal", "confidence"),
        ({"confidence": "NaN"}, "invalid_decimal", "confidence"),
        ({"horizon_days": "31"}, "invalid_field", "horizon_days"),
        ({"method": "garch"}, "invalid_field", "method"),
        ({"confidence_level": "0.9"}, "unknown_field", "confidence_level"),
    ],
)
def test_a_bad_var_query_is_400_naming_the_field(
    world: dict[str, str], query: dict[str, str], code: str, field: str
) -> None:
    # GIVEN a VaR query with a bad value
    # WHEN it is asked
    status, body = get("/v1/analytics/var", query)
    # THEN 400 with the standard error body naming the field
    assert status == 400, body
    assert (body["error"]["code"], body["error"]["field"]) == (code, field)


def test_too_little_history_is_422_with_the_days_available_and_needed(world: dict[str, str]) -> None:
    # GIVEN an account holding a symbol with ten daily returns of history
    # WHEN it asks the 99 % historical VaR (which needs 100 returns) and the summary
    status, body = get("/v1/analytics/var", {"confidence": "0.99"}, account="acc_new")
    summary_status, summary = get("/v1/analytics/summary", account="acc_new")
    # THEN 422 insufficient_history, with the days available and needed
    assert status == summary_status == 422
    assert body["error"]["code"] == "insufficient_history"
    assert (body["error"]["available"], body["error"]["needed"]) == (10, 100)
    assert summary["error"]["code"] == "insufficient_history"


def test_performance_bad_inputs_are_400(world: dict[str, str]) -> None:
    # GIVEN the account
    # WHEN performance is asked with from after to, an unknown benchmark, a malformed date
    after = get("/v1/analytics/performance", {"from": "2026-03-10", "to": "2026-03-01"})
    unknown = get("/v1/analytics/performance", {"benchmark": "NOPE"})
    malformed = get("/v1/analytics/performance", {"from": "2026-3-1"})
    # THEN each is a 400 naming its field
    assert (after[0], after[1]["error"]["code"], after[1]["error"]["field"]) == (400, "invalid_range", "from")
    assert (unknown[0], unknown[1]["error"]["code"]) == (400, "unknown_symbol")
    assert unknown[1]["error"]["field"] == "benchmark"
    assert (malformed[0], malformed[1]["error"]["field"]) == (400, "from")


def test_performance_dates_outside_2000_to_2200_are_400_not_an_overflow(world: dict[str, str]) -> None:
    # GIVEN the account
    # WHEN performance is asked to end at 0001-01-05 (a year before it overflows) or to start at 0001-01-01
    early_end = get("/v1/analytics/performance", {"to": "0001-01-05"})
    early_start = get("/v1/analytics/performance", {"from": "0001-01-01", "to": "2026-03-01"})
    late_end = get("/v1/analytics/performance", {"to": "9999-12-31"})
    # THEN each is a 400 invalid_field naming its field, never a 500
    assert (early_end[0], early_end[1]["error"]["code"], early_end[1]["error"]["field"]) == (400, "invalid_field", "to")
    assert (early_start[0], early_start[1]["error"]["code"], early_start[1]["error"]["field"]) == (
        400,
        "invalid_field",
        "from",
    )
    assert (late_end[0], late_end[1]["error"]["field"]) == (400, "to")


def test_performance_from_stored_valuations_excludes_a_deposit(world: dict[str, str]) -> None:
    # GIVEN three daily valuations: 1,000; 2,100 after a 1,000 deposit; 2,310
    days = [date(2026, 3, 10), date(2026, 3, 11), date(2026, 3, 12)]
    DynamoValuations(world["VALUATIONS_TABLE"]).put_many(
        [
            Valuation("acc_b", days[0], Decimal("1000.00"), Decimal("0.00")),
            Valuation("acc_b", days[1], Decimal("2100.00"), Decimal("0.00"), flows=Decimal("1000.00")),
            Valuation("acc_b", days[2], Decimal("2310.00"), Decimal("0.00")),
        ]
    )
    # WHEN acc_b reads its performance over those days, with AAPL as benchmark
    status, body = get(
        "/v1/analytics/performance", {"from": "2026-03-10", "to": "2026-03-12", "benchmark": "AAPL"}, account="acc_b"
    )
    # THEN two periods of +10 % each: 21 % in total, the deposit is not performance
    assert status == 200, body
    assert body["basis"] == "valuations"
    assert Decimal(body["performance"]["total_return"]) == Decimal("0.21")
    assert Decimal(body["performance"]["net_flows"]) == Decimal("1000.00")


def test_correlation_of_named_symbols_and_an_unknown_symbol(world: dict[str, str]) -> None:
    # GIVEN 300 sessions of AAPL, MSFT and GOOGL closes
    # WHEN the correlation of AAPL and MSFT over 60 returns is asked, then with an unknown symbol
    status, body = get("/v1/analytics/correlation", {"symbols": "AAPL,MSFT", "lookback_days": "60"})
    bad_status, bad = get("/v1/analytics/correlation", {"symbols": "AAPL,ZZZZ"})
    # THEN a 2x2 matrix with ones on the diagonal and 60 overlapping returns per pair
    assert status == 200, body
    assert body["symbols"] == ["AAPL", "MSFT"]
    assert Decimal(body["matrix"][0][0]) == Decimal(body["matrix"][1][1]) == 1
    assert -1 <= Decimal(body["matrix"][0][1]) <= 1
    assert body["observations"][0][1] == 60
    # AND an unknown symbol is a 400
    assert (bad_status, bad["error"]["code"], bad["error"]["field"]) == (400, "unknown_symbol", "symbols")


def test_risk_decomposition_components_sum_to_the_total(world: dict[str, str]) -> None:
    # GIVEN the account with two positions
    # WHEN its parametric decomposition at 99 % is asked, with a beta to GOOGL
    status, body = get(
        "/v1/analytics/risk-decomposition", {"method": "parametric", "confidence": "0.99", "benchmark": "GOOGL"}
    )
    # THEN the components sum to the total VaR, position by position
    assert status == 200, body
    decomposition = body["decomposition"]
    total = Decimal(decomposition["total"])
    assert total > 0
    assert sum(Decimal(p["component_var"]) for p in decomposition["positions"]) == total
    assert body["factors"]["benchmark"] == "GOOGL"


def test_stress_named_and_custom_scenarios(world: dict[str, str]) -> None:
    # GIVEN the account with 19,000 of AAPL and 15,000 of MSFT
    # WHEN the March 2020 crash (market -11.98 %, beta 1 without a benchmark) and a custom AAPL -10 %
    # shock are applied
    status, body = post(
        "/v1/analytics/stress", {"scenarios": ["covid_2020_03_16"], "shocks": {"per_symbol_pct": {"AAPL": "-10"}}}
    )
    # THEN the P&L per position and in total, in cents
    assert status == 200, body
    by_name = {r["scenario"]: r["result"] for r in body["results"]}
    assert Decimal(by_name["covid_2020_03_16"]["total_pnl"]) == Decimal("-4073.20")
    custom = {p["symbol"]: Decimal(p["pnl"]) for p in by_name["custom"]["positions"]}
    assert custom == {"AAPL": Decimal("-1900.00"), "MSFT": Decimal("0.00")}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"scenarios": ["no_such_day"]}, "scenarios"),
        ({"shocks": {"per_symbol_pct": {"ZZZZ": "-5"}}}, "shocks.per_symbol_pct"),
        ({"shocks": {"market_pct": "-101"}}, "shocks.market_pct"),
        ({"shocks": {"market_pct": "1e5"}}, "shocks.market_pct"),
        ({"scenario": ["x"]}, "scenario"),
    ],
)
def test_a_bad_stress_body_is_400(world: dict[str, str], body: dict[str, Any], field: str) -> None:
    # GIVEN a stress request with an unknown scenario or symbol, an out-of-range or float shock
    # WHEN it is posted
    status, answer = post("/v1/analytics/stress", body)
    # THEN 400 naming the field
    assert status == 400, answer
    assert answer["error"]["field"] == field


def test_a_trader_cannot_read_another_account_and_compliance_can(world: dict[str, str]) -> None:
    # GIVEN acc_b's trader, and a compliance officer acting from acc_b
    # WHEN each asks acc_a's summary
    trader = get("/v1/analytics/summary", {"account_id": "acc_a"}, account="acc_b", roles="trader")
    compliance = get("/v1/analytics/summary", {"account_id": "acc_a"}, account="acc_b", roles="compliance")
    stress = post("/v1/analytics/stress", {"account_id": "acc_a"}, account="acc_b")
    # THEN the trader is refused (403) and compliance reads acc_a's figures
    assert (trader[0], trader[1]["error"]["code"]) == (403, "forbidden")
    assert stress[0] == 403
    assert compliance[0] == 200
    assert Decimal(compliance[1]["equity"]) == Decimal("134000.00")
