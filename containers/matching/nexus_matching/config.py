"""The venue rules of the matching engine (``EngineConfig``); see docs/matching-engine.md.

Read once, when the engine and its markets are built: nothing here is on the matching path, so
this module is not compiled.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal
from zoneinfo import ZoneInfo


@dataclass(frozen=True)
class EngineConfig:
    """Venue rules of the engine (see docs/matching-engine.md)."""

    market_band_bps: int = 500
    collar_bps: int = 1000
    reference_prices: Mapping[str, Decimal] = field(default_factory=dict)
    session_close: time | None = time(16, 0)
    session_zone: str = "America/New_York"
    session_closes: Mapping[str, time | None] = field(default_factory=dict)
    dedup_window: int = 50_000

    def __post_init__(self) -> None:
        if self.market_band_bps < 0 or self.collar_bps < 0:
            raise ValueError("bands are non-negative basis points")
        if self.dedup_window < 1:
            raise ValueError("dedup_window is at least 1")
        ZoneInfo(self.session_zone)  # fails fast on an unknown zone

    def close_of(self, symbol: str) -> time | None:
        if symbol in self.session_closes:
            return self.session_closes[symbol]
        return self.session_close


__all__ = ["EngineConfig"]
