"""The detector contract: ``PatternDetector``, the ``Alert`` it raises, and snapshot helpers.

A detector is a fold over one symbol's engine events (no I/O, no clock of its own):

* ``on_event(e)`` takes the next event and returns the alerts it completes. Engine events are
  applied in the symbol's sequence order; one at or below the symbol's watermark (a redelivery,
  or a replay from before a snapshot) changes nothing. Commands (``seq`` 0) are not order facts
  of record: the engine echoes each with a sequenced event, so the detectors skip them.
* ``flush(now_ns)`` closes the windows that end at or before ``now_ns`` (the caller promises no
  event with ``ts < now_ns`` will come later) and returns their alerts.
* ``snapshot()`` is a JSON-able dict of the whole state; ``restore(snapshot)`` puts it back.

Every window slides over event time (``ts``): an episode is seen whatever clock boundary it
straddles. Every piece of state is per symbol, so the order in which symbols interleave (live
shards vs. a file scan) never changes an alert. Alert ids are a hash of the detector, the symbol
and the evidence that triggered it: the same events give the same ids on any replay.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import AwareDatetime, BaseModel, ConfigDict

from nexus_surveillance.events import SurvEvent

Severity = Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]

SNAPSHOT_VERSION = 1


class Thresholds(BaseModel):
    """Base of every detector's typed thresholds: frozen, unknown keys refused."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Alert(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    detector: str
    severity: Severity
    symbol: str
    accounts: list[str]
    users: list[str]
    window_start: AwareDatetime
    window_end: AwareDatetime
    score: float
    evidence: dict[str, Any]
    status: Literal["open"] = "open"


def ns_to_dt(ns: int) -> datetime:
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def alert_id(detector: str, symbol: str, keys: Iterable[str]) -> str:
    """Deterministic id: the detector, the symbol and the triggering evidence ids."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(detector.encode())
    digest.update(b"\x00")
    digest.update(symbol.encode())
    for key in keys:
        digest.update(b"\x00")
        digest.update(key.encode())
    return f"{detector}-{digest.hexdigest()}"


def figure(value: Decimal | int | float) -> str:
    """A figure of the evidence as a wire string."""
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


# -- snapshot encoding: plain JSON with tagged Decimals, tuples, deques, sets and dicts ----------


def encode(obj: Any) -> Any:
    if obj is None or isinstance(obj, (bool, int, str, float)):
        return obj
    if isinstance(obj, Decimal):
        return {"$d": str(obj)}
    if isinstance(obj, tuple):
        return {"$t": [encode(x) for x in obj]}
    if isinstance(obj, list):
        return [encode(x) for x in obj]
    if isinstance(obj, deque):
        return {"$q": [encode(x) for x in obj], "max": obj.maxlen}
    if isinstance(obj, (set, frozenset)):
        return {"$s": sorted((encode(x) for x in obj), key=repr)}
    if isinstance(obj, dict):
        return {"$m": [[encode(k), encode(v)] for k, v in obj.items()]}
    raise TypeError(f"cannot snapshot {type(obj).__name__}")


def decode(obj: Any) -> Any:
    if isinstance(obj, list):
        return [decode(x) for x in obj]
    if isinstance(obj, dict):
        if "$d" in obj:
            return Decimal(obj["$d"])
        if "$t" in obj:
            return tuple(decode(x) for x in obj["$t"])
        if "$q" in obj:
            return deque((decode(x) for x in obj["$q"]), maxlen=obj.get("max"))
        if "$s" in obj:
            return {decode(x) for x in obj["$s"]}
        if "$m" in obj:
            return {decode(k): decode(v) for k, v in obj["$m"]}
        raise ValueError("snapshot: unknown tagged value")
    return obj


T = TypeVar("T", bound=Thresholds)


class PatternDetector(Generic[T]):
    """Base of the detectors. Subclasses set ``name``, ``thresholds_model``, ``_STATE`` (the names of
    their state attributes, plain dicts/lists/deques/tuples/sets of primitives and Decimals),
    ``_reset()`` and ``_apply(e)``."""

    name: ClassVar[str] = ""
    thresholds_model: ClassVar[type[Thresholds]]
    _STATE: ClassVar[tuple[str, ...]] = ()
    # the event kinds the detector reads: others neither change its state nor move its watermark
    # (skipping them is safe: the kinds it reads still arrive in order)
    KINDS: ClassVar[frozenset[str]] = frozenset({"accepted", "fill", "cancelled", "expired", "rejected", "replace"})

    def __init__(self, thresholds: T | Mapping[str, Any] | None = None) -> None:
        self.thresholds: T = self._coerce(thresholds)
        self._watermark: dict[str, int] = {}
        self._reset()

    def _coerce(self, thresholds: T | Mapping[str, Any] | None) -> T:
        model = type(self).thresholds_model
        if thresholds is None:
            return model()  # type: ignore[return-value]
        if isinstance(thresholds, model):
            return thresholds  # type: ignore[return-value]
        if isinstance(thresholds, BaseModel):
            return model.model_validate(thresholds.model_dump())  # type: ignore[return-value]
        return model.model_validate(thresholds)  # type: ignore[return-value]

    def set_thresholds(self, thresholds: T | Mapping[str, Any]) -> None:
        """New thresholds take effect from the next event; the windows already open are kept."""
        self.thresholds = self._coerce(thresholds)
        self._configure()

    # -- the fold ---------------------------------------------------------------------------

    def on_event(self, e: SurvEvent) -> list[Alert]:
        kind = e.kind
        if kind not in self.KINDS:
            return []
        seq = e.seq
        if seq <= 0:
            return []
        key = seq * 2 + (1 if kind == "fill" and not e.aggressor else 0)
        marks = self._watermark
        if key <= marks.get(e.symbol, 0):
            return []
        marks[e.symbol] = key
        return self._apply(e)

    def fold(self, symbol: str, events: Iterable[SurvEvent], last_key: int) -> list[Alert]:
        """What ``on_event`` does for each of ``events``, without its checks per event: the
        scan's hot path. The caller promises that ``events`` are of one symbol, of the kinds
        this detector reads, in engine order with strictly increasing ``order_key``s above the
        symbol's watermark, and that ``last_key`` is the last one's."""
        apply = self._apply
        alerts: list[Alert] = []
        for e in events:
            found = apply(e)
            if found:
                alerts.extend(found)
        if last_key:
            self._watermark[symbol] = last_key
        return alerts

    def watermark(self, symbol: str) -> int:
        """The ``order_key`` of the symbol's last event applied (0: none)."""
        return self._watermark.get(symbol, 0)

    def flush(self, now_ns: int) -> list[Alert]:
        """Close the windows ending by ``now_ns`` and forget the state no later event can use."""
        self._prune(now_ns)
        return []

    # -- state ------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        return {
            "detector": self.name,
            "version": SNAPSHOT_VERSION,
            "thresholds": self.thresholds.model_dump(mode="json"),
            "watermark": dict(self._watermark),
            "state": {field: encode(getattr(self, field)) for field in self._STATE},
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        if snapshot.get("detector") != self.name or snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot is not a {self.name} snapshot of version {SNAPSHOT_VERSION}")
        self.thresholds = self._coerce(snapshot["thresholds"])
        self._reset()
        self._watermark = {str(k): int(v) for k, v in snapshot["watermark"].items()}
        state = snapshot["state"]
        for field in self._STATE:
            setattr(self, field, decode(state[field]))

    # -- for subclasses ---------------------------------------------------------------------

    def _configure(self) -> None:
        """Derive cached figures from ``self.thresholds`` (called after every change)."""

    def _reset(self) -> None:
        self._configure()

    def _apply(self, e: SurvEvent) -> list[Alert]:
        raise NotImplementedError

    def _prune(self, now_ns: int) -> None:
        """Drop state older than every window (no event before ``now_ns`` will come)."""

    def _alert(
        self,
        *,
        severity: Severity,
        symbol: str,
        keys: Iterable[str],
        accounts: Iterable[str],
        users: Iterable[str],
        start_ns: int,
        end_ns: int,
        score: float,
        evidence: dict[str, Any],
    ) -> Alert:
        return Alert(
            id=alert_id(self.name, symbol, keys),
            detector=self.name,
            severity=severity,
            symbol=symbol,
            accounts=sorted(set(accounts)),
            users=sorted(set(users)),
            window_start=ns_to_dt(start_ns),
            window_end=ns_to_dt(end_ns),
            score=round(min(1.0, max(0.0, score)), 4),
            evidence=evidence,
        )
