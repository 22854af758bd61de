"""The application layer of analytics: what the routes, the closing run and the push call.

``AnalyticsService`` computes an account's figures on request: its current holdings (cash and
positions) valued at the last trade of each symbol (the last stored close when a symbol has not
traded), and the stored daily closes for the statistics (``nexus_analytics.metrics``, no I/O).
``ClosingRun`` stores the day's closes from the ``1d`` candles and every account's valuation.

Conventions (docs/analytics.md has the statistics' own):
* "today" is the exchange (New York) date of the injected clock's instant;
* ``lookback_days`` counts daily returns (sessions), at most ``MAX_LOOKBACK``; closes are read
  from the session that gives that many before today (``window_start``, on the exchange
  calendar), so the count does not depend on where weekends and holidays fall;
* an empty portfolio answers zeros, never an error; too little history is a 422
  ``insufficient_history`` with the days available and needed (``metrics.InsufficientHistory``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final, Literal

from nexus_common.calendar import exchange_date, is_business_day, subtract_business_days
from nexus_common.errors import NexusError, NotFound, ValidationFailed
from nexus_common.logging import get_logger
from nexus_common.parallel import run_all

from nexus_analytics import metrics
from nexus_analytics.ports import AccountsSource, DailyCandles, Holdings, PriceHistory, Valuation, Valuations
from nexus_analytics.valuation import PricedPortfolio, holdings_equity, price_portfolio, valuation_of

if TYPE_CHECKING:
    from nexus_common.push import Publisher

logger = get_logger()

Method = Literal["historical", "parametric", "monte_carlo"]
Basis = Literal["auto", "valuations", "holdings"]

DEFAULT_LOOKBACK: Final = 250  # one year of daily returns for VaR, ES and decomposition
MAX_LOOKBACK: Final = 2520
SUMMARY_CONFIDENCES: Final = (Decimal("0.95"), Decimal("0.99"))
PERFORMANCE_MAX_DAYS: Final = 3660
FLOAT_PLACES: Final = 6  # a float statistic crosses the wire as a decimal string of 6 places


class NoPrice(NexusError):
    status = 422
    default_code = "no_price"


def window_start(end: date, sessions: int) -> date:
    """The first day of a window of closes up to ``end`` that holds ``sessions`` daily returns: the
    ``sessions + 1``-th exchange session before ``end`` (``end``'s own close, when it has one yet,
    is one more; the returns are then cut to the last ``sessions``). ``sessions`` is bounded by
    the caller (``MAX_LOOKBACK``)."""
    return subtract_business_days(end, sessions + 1)


def wire(value: Any) -> Any:
    """A metrics result as JSON-ready values: Decimal stays Decimal (a string on the wire),
    floats become decimal strings of ``FLOAT_PLACES`` places (None when not finite or too large
    to state, ``abs >= metrics.STAT_LIMIT``), dates ISO."""
    if isinstance(value, Decimal | str | int | bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or abs(value) >= metrics.STAT_LIMIT:
            return None
        return format(Decimal(repr(value)).quantize(Decimal(1).scaleb(-FLOAT_PLACES)), "f")
    if isinstance(value, date | datetime):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: wire(getattr(value, f.name)) for f in dataclasses.fields(value) if not f.name.startswith("_")}
    if hasattr(value, "model_dump"):
        return wire(value.model_dump())
    if hasattr(value, "tolist"):  # numpy arrays and scalars
        return wire(value.tolist())
    if isinstance(value, Mapping):
        return {str(k): wire(v) for k, v in value.items()}
    if isinstance(value, Sequence | set | frozenset):
        return [wire(v) for v in value]
    return str(value)


class AnalyticsService:
    def __init__(
        self,
        source: AccountsSource,
        prices: PriceHistory,
        valuations: Valuations,
        clock: Callable[[], datetime],
    ) -> None:
        self.source = source
        self.prices = prices
        self.valuations = valuations
        self.clock = clock

    # -- inputs ------------------------------------------------------------------------------

    def today(self) -> date:
        return exchange_date(self.clock())

    def holdings(self, account_id: str) -> Holdings:
        found = self.source.holdings(account_id)
        if found is None:
            raise NotFound("account_not_found", f"no account {account_id}", "account_id")
        return found

    def portfolio(self, account_id: str) -> PricedPortfolio:
        """Current holdings at the last trade (else the last stored close) of each symbol."""
        holdings = self.holdings(account_id)
        symbols = sorted(holdings.quantities)
        prices = self.source.last_prices(symbols)
        for symbol in symbols:
            if symbol not in prices:
                last = self.prices.last_close_on_or_before(symbol, self.today())
                if last is None:
                    raise NoPrice("no_price", f"{symbol} has neither a trade nor a stored close", "symbol")
                prices[symbol] = last[1]
        return price_portfolio(holdings, prices)

    def known_symbols(self) -> set[str]:
        return set(self.source.symbols())

    def check_symbols(self, symbols: Sequence[str], field: str) -> None:
        known = self.known_symbols()
        for symbol in symbols:
            if symbol not in known:
                raise ValidationFailed("unknown_symbol", f"unknown symbol {symbol}", field)

    def closes(self, symbols: Sequence[str], start: date, end: date) -> dict[str, list[tuple[date, Decimal]]]:
        """Each symbol's closes over [start, end]; the symbols' reads are independent and run
        together (``nexus_common.parallel``)."""
        ordered = sorted(set(symbols))
        found = run_all([functools.partial(self.prices.closes, s, start, end) for s in ordered])
        return dict(zip(ordered, found, strict=True))

    def returns(self, symbols: Sequence[str], lookback: int) -> metrics.Returns:
        end = self.today()
        start = window_start(end, lookback)
        return metrics.returns_matrix(self.closes(symbols, start, end), lookback_days=lookback)

    # -- figures -----------------------------------------------------------------------------

    def _risk(
        self,
        pf: PricedPortfolio,
        method: Method,
        confidence: Decimal,
        horizon: int,
        lookback: int,
        returns: metrics.Returns | None = None,
        **kw: Any,
    ) -> dict[str, Any]:
        if returns is None:  # an empty portfolio reads no history: metrics answers zeros for no exposure
            returns = self.returns(list(pf.exposures), lookback) if not pf.empty else metrics.returns_matrix({})
        figure = metrics.value_at_risk(method, pf.exposures, returns, confidence, horizon, equity=pf.equity, **kw)
        answer = wire(figure)
        return answer if isinstance(answer, dict) else {"figure": answer}

    def value_at_risk(
        self,
        account_id: str,
        method: Method,
        confidence: Decimal,
        horizon_days: int,
        lookback_days: int = DEFAULT_LOOKBACK,
        distribution: Literal["normal", "t"] = "normal",
    ) -> dict[str, Any]:
        pf = self.portfolio(account_id)
        extra: dict[str, Any] = {"distribution": distribution} if method == "monte_carlo" else {}
        figure = self._risk(pf, method, confidence, horizon_days, lookback_days, **extra)
        return {"account_id": account_id, "as_of": self.clock(), **_totals(pf), "var": figure}

    def summary(self, account_id: str) -> dict[str, Any]:
        """The year of closes is read once (one Query per held symbol) and serves both VaRs and
        the pro-forma performance."""
        pf = self.portfolio(account_id)
        end = self.today()
        start = window_start(end, DEFAULT_LOOKBACK)
        closes = self.closes(list(pf.exposures), start, end) if not pf.empty else {}
        returns = metrics.returns_matrix(closes, lookback_days=DEFAULT_LOOKBACK)
        risk = {
            f"var_{int(c * 100)}": self._risk(pf, "historical", c, 1, DEFAULT_LOOKBACK, returns)
            for c in SUMMARY_CONFIDENCES
        }
        sharpe: Any = Decimal("0")
        drawdown: Any = Decimal("0")
        basis = "none"
        try:
            perf = self._performance(account_id, pf, start, end, None, "auto", closes)
        except metrics.InsufficientHistory:
            perf = None
            sharpe = drawdown = None
            basis = "insufficient_history"
        if perf is not None and perf["performance"] is not None:
            figures = perf["performance"]
            sharpe, drawdown, basis = figures.get("sharpe"), figures.get("max_drawdown"), perf["basis"]
        return {
            "account_id": account_id,
            "as_of": self.clock(),
            **_totals(pf),
            "positions": [
                {"symbol": s, "quantity": pf.quantities[s], "price": pf.prices[s], "value": pf.exposures[s]}
                for s in pf.exposures
            ],
            "var_95": risk["var_95"],
            "var_99": risk["var_99"],
            "sharpe_1y": sharpe,
            "max_drawdown_1y": drawdown,
            "performance_basis": basis,
        }

    def _performance(
        self,
        account_id: str,
        pf: PricedPortfolio,
        start: date,
        end: date,
        benchmark: str | None,
        basis: Basis,
        closes: Mapping[str, Sequence[tuple[date, Decimal]]] | None = None,
    ) -> dict[str, Any]:
        stored: list[Valuation] = []
        if basis in ("auto", "valuations"):
            stored = self.valuations.of_account(account_id, start, end)
        used: str
        if basis == "valuations" or (basis == "auto" and len(stored) >= 2):
            equity = [(v.day, v.equity) for v in stored]
            flows = [(v.day, v.flows) for v in stored if v.flows != 0]
            used = "valuations"
        else:
            holdings = Holdings(account_id, pf.cash, pf.quantities)
            if closes is None:
                closes = self.closes(list(pf.quantities), start, end)
            equity = holdings_equity(holdings, closes)
            flows = []
            used = "holdings"
            if pf.empty:
                return {"basis": used, "performance": None}
        bench = self.prices.closes(benchmark, start, end) if benchmark else None
        result = metrics.performance(equity, flows, bench)
        answer = wire(result)
        return {"basis": used, "performance": answer if isinstance(answer, dict) else {"result": answer}}

    def performance(
        self, account_id: str, start: date | None, end: date | None, benchmark: str | None, basis: Basis = "auto"
    ) -> dict[str, Any]:
        to = end or self.today()
        since = start or to - timedelta(days=365)
        if since > to:
            raise ValidationFailed("invalid_range", "from is after to", "from")
        if (to - since).days > PERFORMANCE_MAX_DAYS:
            raise ValidationFailed("invalid_range", f"at most {PERFORMANCE_MAX_DAYS} days from from to to", "from")
        if benchmark:
            self.check_symbols([benchmark], "benchmark")
        pf = self.portfolio(account_id)
        found = self._performance(account_id, pf, since, to, benchmark, basis)
        return {"account_id": account_id, "from": since, "to": to, "benchmark": benchmark, **found}

    def risk_decomposition(
        self,
        account_id: str,
        method: Method,
        confidence: Decimal,
        lookback_days: int = DEFAULT_LOOKBACK,
        benchmark: str | None = None,
    ) -> dict[str, Any]:
        if benchmark:
            self.check_symbols([benchmark], "benchmark")
        pf = self.portfolio(account_id)
        answer: dict[str, Any] = {
            "account_id": account_id,
            "as_of": self.clock(),
            **_totals(pf),
            "method": method,
            "confidence": confidence,
        }
        returns = self.returns(list(pf.exposures), lookback_days) if not pf.empty else metrics.returns_matrix({})
        answer["decomposition"] = wire(metrics.risk_decomposition(method, pf.exposures, returns, confidence, 1))
        answer["factors"] = None
        if benchmark and not pf.empty:
            with_benchmark = self.returns(sorted(set(pf.exposures) | {benchmark}), lookback_days)
            answer["factors"] = wire(metrics.factor_exposure(pf.exposures, with_benchmark, benchmark, None))
        return answer

    def correlation(self, account_id: str, symbols: Sequence[str] | None, lookback_days: int) -> dict[str, Any]:
        if symbols:
            self.check_symbols(symbols, "symbols")
            chosen = sorted(set(symbols))
        else:
            chosen = sorted(self.portfolio(account_id).exposures)
        if len(chosen) < 2:
            raise ValidationFailed("invalid_field", "name at least two symbols (or hold two)", "symbols")
        returns = self.returns(chosen, lookback_days)
        if returns.observations < 2:
            raise metrics.InsufficientHistory(returns.observations, 2, "overlapping history")
        found = metrics.correlation(returns)
        return {
            "lookback_days": lookback_days,
            "symbols": list(found.symbols),
            "matrix": wire(found.matrix),
            "observations": wire(found.observations),
            "returns_observations": returns.observations,
        }

    def stress(
        self,
        account_id: str,
        scenarios: Sequence[str] | None,
        per_symbol_pct: Mapping[str, Decimal] | None,
        market_pct: Decimal | None,
        benchmark: str | None,
    ) -> dict[str, Any]:
        named = metrics.SCENARIOS
        for name in scenarios or ():
            if name not in named:
                raise ValidationFailed("unknown_scenario", f"unknown scenario {name!r}", "scenarios")
        if per_symbol_pct:
            self.check_symbols(list(per_symbol_pct), "shocks.per_symbol_pct")
        if benchmark:
            self.check_symbols([benchmark], "benchmark")
        pf = self.portfolio(account_id)
        chosen: list[tuple[str, Any]] = [(name, named[name]) for name in scenarios or ()]
        if per_symbol_pct or market_pct is not None:
            custom = metrics.Scenario.custom(per_symbol_pct=dict(per_symbol_pct or {}), market_pct=market_pct)
            chosen.append(("custom", custom))
        if not chosen:
            chosen = [(name, named[name]) for name in sorted(named)]
        betas: dict[str, float] | None = None
        if benchmark and not pf.empty:
            returns = self.returns(sorted(set(pf.exposures) | {benchmark}), DEFAULT_LOOKBACK)
            column = returns.matrix[:, returns.index[benchmark]]
            betas = {s: metrics.beta(returns.matrix[:, returns.index[s]], column) for s in pf.exposures}
        results = [
            {"scenario": name, "result": wire(metrics.stress(pf.exposures, scenario, betas))}
            for name, scenario in chosen
        ]
        return {
            "account_id": account_id,
            "as_of": self.clock(),
            **_totals(pf),
            "benchmark": benchmark,
            "results": results,
        }


def _totals(pf: PricedPortfolio) -> dict[str, Any]:
    return {
        "cash": pf.cash,
        "equity": pf.equity,
        "positions_value": pf.positions_value,
        "gross_exposure": pf.gross_exposure,
        "net_exposure": pf.positions_value,
    }


@dataclasses.dataclass
class ClosingReport:
    day: date
    closes: int = 0
    carried: int = 0
    valuations: int = 0
    unpriced: int = 0  # positions left out of a valuation: their symbol has no close at all
    skipped: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "day": self.day.isoformat()}


class ClosingRun:
    """At the session close: each symbol's close from its ``1d`` candle (a symbol that did not
    trade keeps its last stored close for valuing, and gets no bar), then every account's
    valuation at those closes with the day's deposits and withdrawals. Re-running a day writes
    the same items (idempotent)."""

    def __init__(
        self, source: AccountsSource, candles: DailyCandles, prices: PriceHistory, valuations: Valuations
    ) -> None:
        self.source = source
        self.candles = candles
        self.prices = prices
        self.valuations = valuations

    def run(self, day: date) -> ClosingReport:
        """Close the session of ``day`` (the exchange date)."""
        report = ClosingReport(day)
        if not is_business_day(day):
            report.skipped = "not a business day"
            return report
        symbols = self.source.symbols()
        bars = self.candles.daily(symbols, day)
        report.closes = self.prices.put_many(bars)
        closes = {bar.symbol: bar.close for bar in bars}
        everyone = self.source.all_holdings()
        for symbol in sorted({s for h in everyone for s in h.quantities} - set(closes)):
            last = self.prices.last_close_on_or_before(symbol, day)
            if last is not None:
                closes[symbol] = last[1]
                report.carried += 1
        valuations = []
        for holdings in everyone:
            priced = {s: q for s, q in holdings.quantities.items() if s in closes}
            report.unpriced += len(holdings.quantities) - len(priced)
            flows = self.source.flows(holdings.account_id, day)
            valuations.append(valuation_of(Holdings(holdings.account_id, holdings.cash, priced), closes, day, flows))
        report.valuations = self.valuations.put_many(valuations)
        return report


def push_summaries(
    prefix: str,
    accounts: Iterable[str],
    publisher: Publisher,
    claim: Callable[[str], bool],
    summarize: Callable[[str], dict[str, Any]],
) -> int:
    """The ``prefix:<account>`` channels' push (``on_positions_stream``): the summary of each account
    someone listens to and whose slot is free, or the error that stands for it; how many pushed."""
    pushed = 0
    wanted = list(accounts)
    publisher.prepare(f"{prefix}:{account}" for account in wanted)  # one read: which have subscribers
    for account in wanted:
        channel = f"{prefix}:{account}"
        if not publisher.subscribers(channel) or not claim(channel):
            continue
        try:
            message: dict[str, Any] = {"type": prefix, "account_id": account, "summary": summarize(account)}
        except metrics.InsufficientHistory as exc:
            message = {
                "type": prefix,
                "account_id": account,
                "error": {"code": "insufficient_history", "available": exc.available, "needed": exc.needed},
            }
        except (metrics.InvalidInput, NexusError) as exc:
            # this account's summary cannot be made (no price for a holding, a refused input):
            # the others of the batch still get theirs; a 5xx error (a store down) fails the batch
            if isinstance(exc, NexusError) and exc.status >= 500:
                raise
            logger.warning("analytics summary not made", extra={"account_id": account, "code": exc.code})
            error: dict[str, Any] = {"code": exc.code, "message": exc.message}
            if exc.field:
                error["field"] = exc.field
            message = {"type": prefix, "account_id": account, "error": error}
        publisher.publish(channel, [message])
        pushed += 1
    return pushed
