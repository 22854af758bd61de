"""Analytics HTTP API (Chalice): ``/v1/analytics/*``. Read-only; handlers are thin.

Whose figures: the caller's acting account, or ``account_id`` (query, or the stress body) when it
is one of the caller's own accounts or the caller has the compliance or admin role; any other
account is 403 ``forbidden``. Too little price history is 422 ``insufficient_history`` with the
days ``available`` and ``needed`` in the error body.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Final

from chalice.app import Chalice, Response
from nexus_common.errors import Forbidden, ValidationFailed, error_body
from nexus_common.events import utc_now
from nexus_common.http import install_error_handling, json_response, parse_body, parse_query
from nexus_common.identity import caller
from nexus_common.logging import get_logger
from nexus_common.openapi import documented
from nexus_common.settings import lazy, lazy_settings

from nexus_analytics import metrics
from nexus_analytics.models import (
    CorrelationOut,
    CorrelationQuery,
    DecompositionOut,
    DecompositionQuery,
    PerformanceOut,
    PerformanceQuery,
    StressOut,
    StressRequest,
    SummaryOut,
    SummaryQuery,
    VarOut,
    VarQuery,
)
from nexus_analytics.repo import CachedPriceHistory, DynamoAccountsSource, DynamoValuations
from nexus_analytics.service import AnalyticsService
from nexus_analytics.settings import AnalyticsApiSettings

READ_ANY_ROLES: Final = ("compliance", "admin")

app = Chalice(app_name="nexus-analytics", configure_logs=False)
logger = get_logger()
install_error_handling(app, logger)

settings = lazy_settings(AnalyticsApiSettings)


@lazy
def service() -> AnalyticsService:
    config = settings()
    return AnalyticsService(
        source=DynamoAccountsSource(
            config.accounts_table, config.positions_table, config.trades_table, config.instruments_table
        ),
        prices=CachedPriceHistory(config.price_history_table, config.closes_cache_seconds),
        valuations=DynamoValuations(config.valuations_table),
        clock=lambda: utc_now(),  # looked up at each call: tests set the module's clock
    )


def target_account(request: Any, asked: str | None) -> str:
    """The account whose figures are asked for, after checking the caller may read them."""
    principal = caller(request)
    if asked is None or asked == principal.account_id:
        return principal.account_id
    if principal.owns(asked) or principal.has_role(*READ_ANY_ROLES):
        return asked
    raise Forbidden("forbidden", "not one of your accounts", "account_id")


def metrics_errors(view: Callable[[], Response]) -> Callable[[], Response]:
    """``metrics.InsufficientHistory`` -> 422 ``insufficient_history`` with available/needed;
    ``metrics.InvalidInput`` -> 400 with its code and field."""

    @functools.wraps(view)
    def guarded() -> Response:
        try:
            return view()
        except metrics.InvalidInput as exc:
            raise ValidationFailed(exc.code, exc.message, exc.field) from None
        except metrics.InsufficientHistory as exc:
            body = error_body(
                "insufficient_history",
                f"{exc.available} days of history available, {exc.needed} needed",
            )
            body["error"].update({"available": exc.available, "needed": exc.needed})
            return json_response(body, status=422)

    return guarded


_EXTRA_DOC: Final = (
    "The caller's acting account, or account_id (one of the caller's own, or any account for the "
    "compliance and admin roles). 422 insufficient_history (with available and needed) when the "
    "price history is too short; an empty portfolio answers zeros."
)


@app.route("/v1/analytics/summary", methods=["GET"])
@documented(
    summary="Equity, exposure, 1-day historical VaR and ES at 95 % and 99 %, Sharpe and max drawdown over a year",
    query=SummaryQuery, response=SummaryOut, tags=("analytics",), description=_EXTRA_DOC,
)
@metrics_errors
def get_summary() -> Response:
    request = app.current_request
    query = parse_query(request, SummaryQuery)
    return json_response(service().summary(target_account(request, query.account_id)))


@app.route("/v1/analytics/var", methods=["GET"])
@documented(
    summary="Value at Risk and Expected Shortfall: historical, parametric or Monte Carlo",
    query=VarQuery, response=VarOut, tags=("analytics",),
    description="confidence in (0.5, 1), horizon_days 1-30 (square-root-of-time scaling). " + _EXTRA_DOC,
)
@metrics_errors
def get_var() -> Response:
    request = app.current_request
    q = parse_query(request, VarQuery)
    account_id = target_account(request, q.account_id)
    answer = service().value_at_risk(
        account_id, q.method, q.confidence, q.horizon_days, q.lookback_days, q.distribution
    )
    return json_response(answer)


@app.route("/v1/analytics/performance", methods=["GET"])
@documented(
    summary="Time-weighted performance over from/to: returns, volatility, drawdown, Sharpe, Sortino, Calmar, beta",
    query=PerformanceQuery, response=PerformanceOut, tags=("analytics",),
    description="from/to are dates (YYYY-MM-DD; default: the last 365 days); basis=valuations uses the "
    "stored daily valuations (deposits and withdrawals excluded), holdings today's holdings at past closes, "
    "auto the valuations when there are two or more. " + _EXTRA_DOC,
)
@metrics_errors
def get_performance() -> Response:
    request = app.current_request
    q = parse_query(request, PerformanceQuery)
    account_id = target_account(request, q.account_id)
    return json_response(service().performance(account_id, q.from_, q.to, q.benchmark, q.basis))


@app.route("/v1/analytics/risk-decomposition", methods=["GET"])
@documented(
    summary="Marginal and component VaR per position (components sum to the total); beta to a benchmark",
    query=DecompositionQuery, response=DecompositionOut, tags=("analytics",), description=_EXTRA_DOC,
)
@metrics_errors
def get_risk_decomposition() -> Response:
    request = app.current_request
    q = parse_query(request, DecompositionQuery)
    account_id = target_account(request, q.account_id)
    answer = service().risk_decomposition(account_id, q.method, q.confidence, q.lookback_days, q.benchmark)
    return json_response(answer)


@app.route("/v1/analytics/correlation", methods=["GET"])
@documented(
    summary="Pearson correlation of daily returns over a lookback, with the overlapping observations",
    query=CorrelationQuery, response=CorrelationOut, tags=("analytics",),
    description="symbols: comma-separated (default: the account's positions). " + _EXTRA_DOC,
)
@metrics_errors
def get_correlation() -> Response:
    request = app.current_request
    q = parse_query(request, CorrelationQuery)
    account_id = target_account(request, q.account_id)
    return json_response(service().correlation(account_id, q.symbol_list(), q.lookback_days))


@app.route("/v1/analytics/stress", methods=["POST"])
@documented(
    summary="Stress test: named historical scenarios and custom shocks, P&L per position and in total",
    request=StressRequest, response=StressOut, tags=("analytics",), description=_EXTRA_DOC,
)
@metrics_errors
def post_stress() -> Response:
    request = app.current_request
    body = parse_body(request, StressRequest)
    account_id = target_account(request, body.account_id)
    shocks = body.shocks
    answer = service().stress(
        account_id,
        body.scenarios,
        shocks.per_symbol_pct if shocks else None,
        shocks.market_pct if shocks else None,
        body.benchmark,
    )
    return json_response(answer)
