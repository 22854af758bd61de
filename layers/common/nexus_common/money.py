"""Exact money and quantities.

Every amount in NexusTrade is a ``Decimal``; ``float`` never touches money. Decimals cross JSON
and event boundaries as strings (APIs also accept JSON numbers, parsed without going through
float). Precision and rounding are fixed here, in one place:

* quantities: 8 decimal places
* per-share prices: 4 decimal places
* USD amounts: 2 decimal places

The rounding mode is always passed explicitly; the default for derived values (average prices,
notional in USD) is banker's rounding, ``ROUND_HALF_EVEN``, so that rounding errors do not drift
in one direction over many operations.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, localcontext
from typing import Final

QUANTITY_PLACES: Final = 8
PRICE_PLACES: Final = 4
USD_PLACES: Final = 2

QUANTITY_EXP: Final = Decimal(1).scaleb(-QUANTITY_PLACES)
PRICE_EXP: Final = Decimal(1).scaleb(-PRICE_PLACES)
USD_EXP: Final = Decimal(1).scaleb(-USD_PLACES)

DEFAULT_ROUNDING: Final = ROUND_HALF_EVEN

# Largest magnitude accepted anywhere (quantities and prices): 10^12. Keeps every product of
# price and quantity far inside both Decimal's context precision and 64-bit engine integers.
MAX_MAGNITUDE: Final = Decimal(10) ** 12

_CONTEXT: Final = Context(prec=38, rounding=DEFAULT_ROUNDING)


class MoneyError(ValueError):
    """A value is not an acceptable decimal amount."""


def to_decimal(value: object) -> Decimal:
    """Parse a decimal from a string, int or Decimal; refuses floats, NaN and infinities.

    JSON numbers must be parsed with ``parse_float=Decimal`` (see ``nexus_common.jsonutil``) so
    they arrive here as ``Decimal`` and never as ``float``.
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError("floating-point values are not accepted for money; send a decimal string")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text or len(text) > 40:
            raise MoneyError("not a decimal number")
        try:
            result = Decimal(text)
        except InvalidOperation as exc:
            raise MoneyError("not a decimal number") from exc
    else:
        raise MoneyError("not a decimal number")
    if not result.is_finite():
        raise MoneyError("not a finite decimal number")
    if abs(result) >= MAX_MAGNITUDE:
        raise MoneyError("value is too large")
    return result


def _quantize(value: Decimal, exp: Decimal, rounding: str) -> Decimal:
    with localcontext(_CONTEXT):
        return value.quantize(exp, rounding=rounding)


def quantize_quantity(value: Decimal, rounding: str = DEFAULT_ROUNDING) -> Decimal:
    """Round a quantity to 8 dp with the given rounding mode."""
    return _quantize(value, QUANTITY_EXP, rounding)


def quantize_price(value: Decimal, rounding: str = DEFAULT_ROUNDING) -> Decimal:
    """Round a per-share price to 4 dp with the given rounding mode."""
    return _quantize(value, PRICE_EXP, rounding)


def quantize_usd(value: Decimal, rounding: str = DEFAULT_ROUNDING) -> Decimal:
    """Round a USD amount to 2 dp (cents) with the given rounding mode."""
    return _quantize(value, USD_EXP, rounding)


def has_places(value: Decimal, places: int) -> bool:
    """True when ``value`` needs no more than ``places`` decimal places."""
    return value == value.quantize(Decimal(1).scaleb(-places), rounding=DEFAULT_ROUNDING)


def fmt(value: Decimal) -> str:
    """Canonical wire form: plain notation, no exponent, no trailing zeros beyond the integer."""
    normalized = value.normalize()
    if normalized == normalized.to_integral_value():
        return format(normalized.quantize(Decimal(1)), "f")
    return format(normalized, "f")
