"""The ports of market data: the value types of the snapshot cache and the interfaces the
service needs of the cache, the instruments and the stored views (``nexus_marketdata.repo``
implements them). No boto3, no Redis."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

from nexus_common.events import AnyEngineEvent, BookEvent, TradeEvent
from nexus_common.instruments import Instrument

from nexus_marketdata.candles import Candle
from nexus_marketdata.domain import BookLevel
from nexus_marketdata.l3 import L3Level, L3Order

TIER1_SYMBOLS: Final = frozenset({"AAPL", "GOOGL", "MSFT", "AMZN"})

Outcome = Literal["hit", "stale", "fetched", "coalesced", "fallback", "bypass"]


@dataclass(frozen=True)
class Freshness:
    fresh_ms: int
    max_age_ms: int


@dataclass(frozen=True)
class CacheConfig:
    tier1_symbols: frozenset[str] = TIER1_SYMBOLS
    tier1: Freshness = Freshness(fresh_ms=50, max_age_ms=100)
    standard: Freshness = Freshness(fresh_ms=1_000, max_age_ms=5_000)
    jitter: float = 0.2
    hot_reads: int = 200  # reads in one window that promote a symbol to tier 1
    hot_window_s: int = 10
    lock_ms: int = 2_000  # how long a fetch may hold the lock before another reader may take over
    wait_ms: int = 3_000  # how long a waiter waits for the lock holder before fetching itself
    poll_ms: tuple[float, float] = (1.0, 10.0)  # waiter back-off: first and largest sleep
    prefix: str = "nexus:md:"


@dataclass
class CacheRead:
    value: dict[str, Any]
    outcome: Outcome
    tier1: bool
    age_ms: int = 0


@dataclass
class CacheStats:
    """What the cache did, per outcome (this process only)."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + 1


class SnapshotStore(Protocol):
    """The snapshot cache (``nexus_marketdata.repo.SnapshotCache`` on Redis)."""

    config: CacheConfig

    def get(self, symbol: str, view: str, fetch: Callable[[], dict[str, Any]]) -> CacheRead: ...
    def warm(self, symbol: str, view: str, value: dict[str, Any]) -> Freshness: ...
    def pin(self, symbol: str, seconds: int) -> None: ...


class InstrumentSource(Protocol):
    def get(self, symbol: str) -> Instrument | None: ...
    def list_all(self) -> list[Instrument]: ...


class TradeTape(Protocol):
    def put(self, event: TradeEvent) -> bool: ...
    def recent(self, symbol: str, limit: int) -> list[dict[str, Any]]: ...


class BookLevels(Protocol):
    def apply(self, event: BookEvent) -> bool: ...
    def top(self, symbol: str, side: str, depth: int) -> list[BookLevel]: ...


class CandleSeries(Protocol):
    def apply(self, trades: list[TradeEvent], stored: dict[tuple[str, str], Candle] | None = None) -> int: ...
    def range(self, symbol: str, interval: str, start: str, end: str, limit: int) -> list[Candle]: ...
    def get(self, symbol: str, interval: str, bucket: str) -> Candle | None: ...


class ViewReadAhead(Protocol):
    def load(
        self, candle_keys: list[tuple[str, str]], order_keys: list[tuple[str, str]]
    ) -> tuple[dict[tuple[str, str], Candle], dict[tuple[str, str], L3Order]]:
        """A batch's stored candles (``candles.candles_from_item``: closed ones by (series, bucket),
        live ones by (``<symbol>#live``, interval)) and L3 orders by (symbol, order id), read
        together; a missing key does not exist."""
        ...


class BookOrders(Protocol):
    def plan(
        self, symbol: str, records: Sequence[Sequence[AnyEngineEvent]], stored: dict[str, L3Order] | None = None
    ) -> list[Callable[[], int]]: ...
    def side(self, symbol: str, side: str, depth: int) -> list[L3Level]: ...
