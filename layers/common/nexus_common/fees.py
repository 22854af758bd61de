"""Fees and the cash amount of a fill: computed and rounded here, and only here.

* The cash amount of a fill is ``quantity x price`` rounded to cents with ``ROUND_HALF_EVEN``
  (``cash_amount``). The buyer pays exactly what the seller receives, so cash is conserved.
* A fee is ``cash_amount x rate`` rounded to cents with ``ROUND_HALF_EVEN`` (``fee``), once per
  fill, at this one point. The rounded fee is what the account is charged, what the ledger posts
  and what the venue earns, so fees charged and fees earned are equal to the cent whatever their
  number; banker's rounding keeps the sum of rounded fees within cents of the exact sum instead
  of drifting one way.
* The schedule is maker/taker in basis points (``FeeSchedule.from_bps``); the template gives every
  function that charges or reserves fees the same two parameters (``MAKER_FEE_BPS``,
  ``TAKER_FEE_BPS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Final, Literal

from nexus_common.money import quantize_usd

Liquidity = Literal["maker", "taker"]

CASH_ROUNDING: Final = ROUND_HALF_EVEN
FEE_ROUNDING: Final = ROUND_HALF_EVEN
_BPS: Final = Decimal(10000)


@dataclass(frozen=True)
class FeeSchedule:
    maker_rate: Decimal  # fraction of the cash amount, e.g. 0.0001 for 1 bp
    taker_rate: Decimal

    def __post_init__(self) -> None:
        for rate in (self.maker_rate, self.taker_rate):
            if not rate.is_finite() or rate < 0 or rate >= 1:
                raise ValueError("a fee rate is a fraction in [0, 1)")

    @classmethod
    def from_bps(cls, maker_bps: Decimal, taker_bps: Decimal) -> FeeSchedule:
        return cls(maker_rate=maker_bps / _BPS, taker_rate=taker_bps / _BPS)

    def rate(self, liquidity: Liquidity) -> Decimal:
        return self.maker_rate if liquidity == "maker" else self.taker_rate

    @property
    def max_rate(self) -> Decimal:
        return max(self.maker_rate, self.taker_rate)


def cash_amount(quantity: Decimal, price: Decimal) -> Decimal:
    """Cash of a fill in USD: ``quantity x price`` to cents, ROUND_HALF_EVEN."""
    return quantize_usd(quantity * price, CASH_ROUNDING)


def fee(schedule: FeeSchedule, liquidity: Liquidity, amount: Decimal) -> Decimal:
    """Fee of a fill whose cash amount is ``amount``: to cents, ROUND_HALF_EVEN (the one point)."""
    return quantize_usd(amount * schedule.rate(liquidity), FEE_ROUNDING)
