"""Instruments: what can be traded, with its tick and lot size.

Inside the matching engine prices are integer ticks and quantities integer lots; these are the
only conversions between the decimal world and the engine's integers.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Final

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nexus_common.money import PRICE_PLACES, QUANTITY_PLACES, has_places


class InstrumentError(ValueError):
    """A price or quantity does not fit the instrument."""

    def __init__(self, code: str, message: str, field: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field


class Instrument(BaseModel):
    """A tradable instrument. Frozen: instruments are reference data."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    symbol: str = Field(pattern=r"^[A-Z][A-Z0-9.]{0,11}$")
    name: str = ""
    currency: str = "USD"
    tick_size: Decimal = Field(gt=0)
    lot_size: Decimal = Field(gt=0)
    status: str = "active"  # active | halted

    @field_validator("tick_size")
    @classmethod
    def _tick_places(cls, value: Decimal) -> Decimal:
        if not has_places(value, PRICE_PLACES):
            raise ValueError(f"tick size needs at most {PRICE_PLACES} decimal places")
        return value

    @field_validator("lot_size")
    @classmethod
    def _lot_places(cls, value: Decimal) -> Decimal:
        if not has_places(value, QUANTITY_PLACES):
            raise ValueError(f"lot size needs at most {QUANTITY_PLACES} decimal places")
        return value

    # -- decimal <-> engine integers ---------------------------------------------------------

    def price_to_ticks(self, price: Decimal, field: str = "price") -> int:
        """Exact price -> integer ticks; raises InstrumentError when off the tick grid."""
        if not price.is_finite() or price <= 0:
            raise InstrumentError("invalid_price", "price must be positive", field)
        units = _exact_units(price, PRICE_PLACES)
        step = _exact_units(self.tick_size, PRICE_PLACES)
        if units is None or step is None or units % step:
            raise InstrumentError(
                "price_off_tick", f"price must be a multiple of the tick size {self.tick_size}", field
            )
        return units // step

    def quantity_to_lots(self, quantity: Decimal, field: str = "quantity") -> int:
        """Exact quantity -> integer lots; raises InstrumentError when off the lot grid."""
        if not quantity.is_finite() or quantity <= 0:
            raise InstrumentError("invalid_quantity", "quantity must be positive", field)
        units = _exact_units(quantity, QUANTITY_PLACES)
        step = _exact_units(self.lot_size, QUANTITY_PLACES)
        if units is None or step is None or units % step:
            raise InstrumentError(
                "quantity_off_lot",
                f"quantity must be a multiple of the lot size {self.lot_size}",
                field,
            )
        return units // step

    def ticks_to_price(self, ticks: int) -> Decimal:
        return self.tick_size * ticks

    def lots_to_quantity(self, lots: int) -> Decimal:
        return self.lot_size * lots


# Largest power of ten ``_exact_units`` computes, and most digits it reads.
_MAX_SCALE: Final = 64


def _exact_units(value: Decimal, places: int) -> int | None:
    """``value`` as an integer count of 10^-places, or None if it has more decimal places.

    Pure integer arithmetic on the decimal's digits: no context precision, no rounding. The
    scale is bounded first (``money.to_decimal`` bounds every wire value far inside it): an
    exponent such as -999999999 would otherwise compute 10^999999995."""
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or len(digits) > _MAX_SCALE:
        return None
    shift = exponent + places
    if not -_MAX_SCALE <= shift <= _MAX_SCALE:
        return None
    number: int = int("".join(map(str, digits)) or "0")
    if shift < 0:
        scale = 10 ** (-shift)
        if number % scale:
            return None
        number //= scale
    else:
        number *= 10**shift
    return -number if sign else number


DEMO_INSTRUMENTS: Final[tuple[Instrument, ...]] = tuple(
    Instrument(symbol=symbol, name=name, tick_size=Decimal("0.01"), lot_size=Decimal("1"))
    for symbol, name in (
        ("AAPL", "Apple Inc."),
        ("MSFT", "Microsoft Corporation"),
        ("GOOGL", "Alphabet Inc. Class A"),
        ("AMZN", "Amazon.com, Inc."),
    )
)
