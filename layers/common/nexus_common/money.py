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

import re
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

# The bounds of a decimal on the wire, checked on its digits and exponent before any arithmetic:
# an instrument needs 12 integer digits and 8 decimal places at most, so a value with more than
# 38 digits (the context precision), more than 38 decimal places, or an exponent over 12 is no
# price or quantity. Without them "1e-999999999" makes an exact conversion compute 10^999999995.
MAX_TEXT: Final = 40
MAX_DIGITS: Final = 38
MIN_EXPONENT: Final = -38
MAX_EXPONENT: Final = 12

# The wire grammar of a decimal string is the JSON number grammar, ASCII only: an optional minus,
# no leading zeros, an optional fraction and exponent. Not Python's: no "_", no "+1", no " 1", no
# non-ASCII digits (Arabic-Indic, fullwidth), no "NaN"/"Infinity".
_JSON_NUMBER: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?", re.ASCII)


class MoneyError(ValueError):
    """A value is not an acceptable decimal amount (the API answers 400 ``invalid_decimal``)."""

    code: Final = "invalid_decimal"


def to_decimal(value: object) -> Decimal:
    """Parse a decimal from a string, int or Decimal; refuses floats, NaN and infinities.

    A string must be a JSON number (``_JSON_NUMBER``); JSON numbers must be parsed with
    ``parse_float=Decimal`` (see ``nexus_common.jsonutil``) so they arrive here as ``Decimal``
    and never as ``float``. Digits and exponent are bounded (``MAX_DIGITS``, ``MIN_EXPONENT``,
    ``MAX_EXPONENT``) and the magnitude stays under ``MAX_MAGNITUDE``, all checked before any
    arithmetic. The result is in plain notation (its exponent is never positive: "1E1" is 10),
    so that it reaches tables and streams as "10", never "1E+1".
    """
    if isinstance(value, bool) or isinstance(value, float):
        raise MoneyError("floating-point values are not accepted for money; send a decimal string")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        if not -MAX_MAGNITUDE < value < MAX_MAGNITUDE:
            raise MoneyError("value is too large")
        result = Decimal(value)
    elif isinstance(value, str):
        if len(value) > MAX_TEXT or _JSON_NUMBER.fullmatch(value) is None:
            raise MoneyError("not a decimal number: send a JSON number, e.g. \"101.25\"")
        try:
            result = Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the grammar admits only valid text
            raise MoneyError("not a decimal number") from exc
    else:
        raise MoneyError("not a decimal number")
    exponent = _bounded_exponent(result)
    if result.copy_abs() >= MAX_MAGNITUDE:  # exact, no context: cannot overflow
        raise MoneyError("value is too large")
    if exponent > 0:
        with localcontext(_CONTEXT):  # at most 12 digits here: exact
            result = result.quantize(Decimal(1))
    return result


def _bounded_exponent(value: Decimal) -> int:
    """The exponent of ``value``; refuses non-finite values and digit counts or exponents beyond
    ``MAX_DIGITS`` / ``MIN_EXPONENT`` / ``MAX_EXPONENT``, from the digits and exponent alone (no
    arithmetic)."""
    if not value.is_finite():
        raise MoneyError("not a finite decimal number")
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):  # pragma: no cover - finite decimals have an int exponent
        raise MoneyError("not a finite decimal number")
    if len(digits) > MAX_DIGITS:
        raise MoneyError(f"too many digits: at most {MAX_DIGITS}")
    if exponent < MIN_EXPONENT:
        raise MoneyError(f"too many decimal places: at most {-MIN_EXPONENT}")
    if exponent > MAX_EXPONENT:
        raise MoneyError("value is too large")
    return exponent


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
