"""What the analytics routes read (queries and the stress body) and answer (for the OpenAPI
document). Decimals are wire decimals (strings or JSON numbers, never floats); every bound is
checked before any arithmetic."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from typing import Any, Final, Literal

from nexus_common.fields import WireDecimal
from pydantic import BaseModel, ConfigDict, Field, field_validator

from nexus_analytics.service import DEFAULT_LOOKBACK, MAX_LOOKBACK

_SYMBOL: Final = re.compile(r"^[A-Z][A-Z0-9.]{0,11}$")
MAX_SYMBOLS: Final = 50
MAX_SCENARIOS: Final = 20
MAX_SHOCK_PCT: Final = Decimal(100)


def _confidence(value: Decimal) -> Decimal:
    if not Decimal("0.5") < value < Decimal(1):
        raise ValueError("confidence must be between 0.5 and 1, both excluded (e.g. 0.99)")
    return value


class AccountQuery(BaseModel):
    """``account_id``: another account than the caller's (compliance and admin, or one of the
    caller's own accounts)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    account_id: str | None = Field(default=None, min_length=1, max_length=128)


class SummaryQuery(AccountQuery):
    pass


class VarQuery(AccountQuery):
    method: Literal["historical", "parametric", "monte_carlo"] = "historical"
    confidence: WireDecimal = Decimal("0.99")
    horizon_days: int = Field(default=1, ge=1, le=30)
    lookback_days: int = Field(default=DEFAULT_LOOKBACK, ge=20, le=MAX_LOOKBACK)
    distribution: Literal["normal", "t"] = "normal"

    _check_confidence = field_validator("confidence")(_confidence)


class DecompositionQuery(AccountQuery):
    method: Literal["historical", "parametric", "monte_carlo"] = "historical"
    confidence: WireDecimal = Decimal("0.99")
    lookback_days: int = Field(default=DEFAULT_LOOKBACK, ge=20, le=MAX_LOOKBACK)
    benchmark: str | None = Field(default=None, pattern=_SYMBOL.pattern)

    _check_confidence = field_validator("confidence")(_confidence)


class PerformanceQuery(AccountQuery):
    from_: date | None = Field(default=None, alias="from")
    to: date | None = None
    benchmark: str | None = Field(default=None, pattern=_SYMBOL.pattern)
    basis: Literal["auto", "valuations", "holdings"] = "auto"

    @field_validator("from_", "to", mode="before")
    @classmethod
    def _iso_date(cls, value: Any) -> Any:
        if isinstance(value, str) and (len(value) != 10 or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
            raise ValueError("a date is YYYY-MM-DD")
        return value

    @field_validator("from_", "to")
    @classmethod
    def _year_range(cls, value: date | None) -> date | None:
        # bounded before any date arithmetic (0001-01-05 minus a year overflows)
        if value is not None and not 2000 <= value.year <= 2200:
            raise ValueError("out of range (years 2000 to 2200)")
        return value


class CorrelationQuery(AccountQuery):
    symbols: str | None = Field(default=None, min_length=1, max_length=MAX_SYMBOLS * 13)
    lookback_days: int = Field(default=90, ge=2, le=MAX_LOOKBACK)

    @field_validator("symbols")
    @classmethod
    def _symbols(cls, value: str | None) -> str | None:
        if value is None:
            return None
        names = [s.strip() for s in value.split(",")]
        if len(names) > MAX_SYMBOLS:
            raise ValueError(f"at most {MAX_SYMBOLS} symbols")
        for name in names:
            if not _SYMBOL.match(name):
                raise ValueError(f"{name!r} is not a symbol (upper-case letters and digits)")
        return ",".join(names)

    def symbol_list(self) -> list[str] | None:
        return self.symbols.split(",") if self.symbols else None


def _pct(value: Decimal) -> Decimal:
    if not -MAX_SHOCK_PCT <= value <= 10 * MAX_SHOCK_PCT:
        raise ValueError("a shock is a percent between -100 and 1000")
    return value


class Shocks(BaseModel):
    """Custom shocks in percent: ``per_symbol_pct`` ({"AAPL": "-10"}), ``market_pct`` (every
    position moves by it times its beta to ``benchmark``, or 1 without one)."""

    model_config = ConfigDict(extra="forbid")

    per_symbol_pct: dict[str, WireDecimal] | None = Field(default=None, max_length=MAX_SYMBOLS)
    market_pct: WireDecimal | None = None

    @field_validator("per_symbol_pct")
    @classmethod
    def _per_symbol(cls, value: dict[str, Decimal] | None) -> dict[str, Decimal] | None:
        for symbol, pct in (value or {}).items():
            if not _SYMBOL.match(symbol):
                raise ValueError(f"{symbol!r} is not a symbol")
            _pct(pct)
        return value

    @field_validator("market_pct")
    @classmethod
    def _market(cls, value: Decimal | None) -> Decimal | None:
        return _pct(value) if value is not None else None


class StressRequest(BaseModel):
    """``scenarios``: names of the historical scenarios (all of them when neither scenarios
    nor shocks are given); ``shocks``: a custom scenario."""

    model_config = ConfigDict(extra="forbid")

    scenarios: list[str] | None = Field(default=None, max_length=MAX_SCENARIOS)
    shocks: Shocks | None = None
    benchmark: str | None = Field(default=None, pattern=_SYMBOL.pattern)
    account_id: str | None = Field(default=None, min_length=1, max_length=128)

    @field_validator("scenarios")
    @classmethod
    def _names(cls, value: list[str] | None) -> list[str] | None:
        for name in value or ():
            if not 1 <= len(name) <= 64:
                raise ValueError("a scenario name has 1 to 64 characters")
        return value


# -- answers (documentation) -----------------------------------------------------------------


class RiskFigureOut(BaseModel):
    method: str
    confidence: str
    horizon_days: int
    var: str = Field(description="positive loss in USD")
    expected_shortfall: str
    var_pct: str | None = Field(default=None, description="of equity")
    es_pct: str | None = None
    observations: int


class PositionOut(BaseModel):
    symbol: str
    quantity: str
    price: str
    value: str


class SummaryOut(BaseModel):
    account_id: str
    as_of: str
    cash: str
    equity: str
    positions_value: str
    gross_exposure: str
    net_exposure: str
    positions: list[PositionOut]
    var_95: RiskFigureOut
    var_99: RiskFigureOut
    sharpe_1y: str | None
    max_drawdown_1y: Any
    performance_basis: str = Field(description="valuations | holdings (pro forma) | none | insufficient_history")


class VarOut(BaseModel):
    account_id: str
    as_of: str
    equity: str
    gross_exposure: str
    var: RiskFigureOut


class PerformanceOut(BaseModel):
    account_id: str
    from_: str = Field(alias="from")
    to: str
    benchmark: str | None
    basis: str
    performance: dict[str, Any] | None


class DecompositionOut(BaseModel):
    account_id: str
    method: str
    confidence: str
    decomposition: dict[str, Any]
    factors: dict[str, Any] | None


class CorrelationOut(BaseModel):
    lookback_days: int
    symbols: list[str]
    matrix: list[list[str | None]] = Field(description="Pearson, 6 dp; null with fewer than 3 overlaps")
    observations: list[list[int]] = Field(description="overlapping daily returns of each pair")
    returns_observations: int


class StressResultOut(BaseModel):
    scenario: str
    result: dict[str, Any]


class StressOut(BaseModel):
    account_id: str
    equity: str
    benchmark: str | None
    results: list[StressResultOut]
