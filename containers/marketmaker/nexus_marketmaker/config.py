"""The market maker's configuration: a typed, frozen model read from the market-maker table's
``config`` item (``nexus up --demo`` writes one for the demo symbols and venues).

Prices are per share in USD; spreads and skew in ticks of each symbol; sizes in shares.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_SYMBOLS = 50
MAX_VENUES = 16


class MarketMakerConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    account_id: str = Field(min_length=1, max_length=64)
    symbols: tuple[str, ...] = Field(min_length=1, max_length=MAX_SYMBOLS)
    venues: tuple[str, ...] = Field(min_length=1, max_length=MAX_VENUES)  # venue names, internal included
    reference_prices: dict[str, Decimal] = Field(default_factory=dict)  # used until the symbol trades
    half_spread_ticks: int = Field(default=2, ge=1, le=1000)
    venue_offset_ticks: dict[str, int] = Field(default_factory=dict)  # per venue, widens its quotes
    size: Decimal = Field(default=Decimal(100), gt=0, le=Decimal(100_000))
    levels: int = Field(default=2, ge=1, le=10)
    level_step_ticks: int = Field(default=1, ge=1, le=100)
    refresh_seconds: Decimal = Field(default=Decimal(2), ge=Decimal("0.1"), le=Decimal(3600))
    max_inventory: Decimal = Field(default=Decimal(1000), gt=0, le=Decimal(10_000_000))
    skew_ticks: int = Field(default=2, ge=0, le=1000)  # reservation price moves this far at max inventory

    @model_validator(mode="after")
    def _prices_positive(self) -> MarketMakerConfig:
        for symbol, price in self.reference_prices.items():
            if not price.is_finite() or price <= 0 or price >= Decimal(10) ** 9:
                raise ValueError(f"reference price of {symbol} must be positive")
        return self

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> MarketMakerConfig:
        body = {k: v for k, v in item.items() if k != "item"}
        for key in ("half_spread_ticks", "levels", "level_step_ticks", "skew_ticks"):
            if key in body:
                body[key] = int(body[key])
        if "venue_offset_ticks" in body:
            body["venue_offset_ticks"] = {k: int(v) for k, v in body["venue_offset_ticks"].items()}
        return cls.model_validate(body)

    def to_item(self) -> dict[str, Any]:
        return {"item": "config", **self.model_dump(mode="json")}
