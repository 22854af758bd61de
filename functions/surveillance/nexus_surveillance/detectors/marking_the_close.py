"""Marking the close: aggressive trading in the last minutes before the session close that moves
the closing price.

The session closes at ``close_time`` in the exchange's zone (``nexus_common.calendar``'s
America/New_York) on the date of the trading. In the last ``window_ms`` before it, an owner whose
aggressive (taker) fills on one side number ``min_trades`` and are ``min_share`` of the quantity
all takers traded on that side in that window is alerted when the closing price (the last trade
before the close) is at least ``min_move_bps`` beyond the owner's reference price (the last trade
before its first aggressive fill of the window) in the direction the owner traded, and (with
``largest_taker_only``) no other owner took more on that side. The window is judged once the close
has passed in event time: at the symbol's first event after it, or at ``flush(now)`` with ``now``
past it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from nexus_common.calendar import EXCHANGE_TZ
from pydantic import Field

from nexus_surveillance.detectors.base import Alert, PatternDetector, Thresholds, figure
from nexus_surveillance.events import SurvEvent

_MS = 1_000_000
_BPS = Decimal(10_000)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class MarkingTheCloseThresholds(Thresholds):
    close_time: time = time(16, 0)
    window_ms: int = Field(default=300_000, gt=0, le=6 * 3_600_000)
    min_trades: int = Field(default=2, ge=1, le=100_000)
    min_share: Decimal = Field(default=Decimal("0.3"), gt=0, le=1)
    min_move_bps: Decimal = Field(default=Decimal(12), gt=0, le=10_000)
    largest_taker_only: bool = True


def _ns(instant: datetime) -> int:
    delta = instant - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


class MarkingTheCloseDetector(PatternDetector[MarkingTheCloseThresholds]):
    name = "marking_the_close"
    thresholds_model = MarkingTheCloseThresholds
    KINDS = frozenset({"fill"})
    _STATE = ("_sessions",)

    def _configure(self) -> None:
        self._window = self.thresholds.window_ms * _MS
        self._closes: dict[date, int] = {}

    def _reset(self) -> None:
        super()._reset()
        # symbol -> [close_ns, reference price, window trades: list of
        #   (ts, side, qty, price, owner, account, trade id)]
        self._sessions: dict[str, list[Any]] = {}

    def close_of(self, ts: int) -> int:
        """The first session close at or after ``ts`` (epoch ns)."""
        seconds = ts // 1_000_000_000
        day = datetime.fromtimestamp(seconds, UTC).astimezone(EXCHANGE_TZ).date()
        close = self._close_on(day)
        if ts >= close:
            close = self._close_on(day + timedelta(days=1))
        return close

    def _close_on(self, day: date) -> int:
        cached = self._closes.get(day)
        if cached is None:
            local = datetime.combine(day, self.thresholds.close_time, tzinfo=EXCHANGE_TZ)
            cached = self._closes[day] = _ns(local.astimezone(UTC))
        return cached

    def _apply(self, e: SurvEvent) -> list[Alert]:
        if e.kind != "fill" or not e.aggressor:
            return []
        symbol, ts = e.symbol, e.ts
        alerts: list[Alert] = []
        session = self._sessions.get(symbol)
        if session is None:
            session = self._sessions[symbol] = [self.close_of(ts), None, []]
        elif ts >= session[0]:
            alerts = self._judge(symbol, session)
            self._next(session, ts)
        price = e.fill_price or Decimal(0)
        if ts < session[0] - self._window:
            session[1] = price
        else:
            session[2].append((ts, e.side, e.fill_quantity or Decimal(0), price, e.owner, e.account_id,
                               e.trade_id or e.event_id))
        return alerts

    def flush(self, now_ns: int) -> list[Alert]:
        self._prune(now_ns)
        alerts: list[Alert] = []
        for symbol in sorted(self._sessions):
            session = self._sessions[symbol]
            if now_ns >= session[0]:
                alerts.extend(self._judge(symbol, session))
                self._next(session, now_ns)
        return alerts

    def _next(self, session: list[Any], now_ns: int) -> None:
        """The session after a judged one: its reference is the last close."""
        if session[2]:
            session[1] = session[2][-1][3]
        session[2] = []
        session[0] = self.close_of(now_ns)

    def _judge(self, symbol: str, session: list[Any]) -> list[Alert]:
        close_ns, reference, trades = session
        if not trades:
            return []
        t = self.thresholds
        if reference is None:
            reference = trades[0][3]
        closing = trades[-1][3]
        if reference <= 0:
            return []
        by_owner: dict[tuple[str, str], list[Any]] = {}
        totals = {"buy": Decimal(0), "sell": Decimal(0)}
        for i, x in enumerate(trades):
            totals[x[1]] += x[2]
            entry = by_owner.get((x[4], x[1]))
            if entry is None:
                # the owner's reference: the last trade before its first aggressive one
                before = trades[i - 1][3] if i > 0 else reference
                entry = by_owner[(x[4], x[1])] = [Decimal(0), 0, [], set(), before]
            entry[0] += x[2]
            entry[1] += 1
            entry[2].append(x[6])
            entry[3].add(x[5])
        top: dict[str, Decimal] = {}
        for (_owner, side), entry in by_owner.items():
            top[side] = max(top.get(side, Decimal(0)), entry[0])
        alerts: list[Alert] = []
        for (owner, side) in sorted(by_owner):
            qty, count, ids, accounts, before = by_owner[(owner, side)]
            if t.largest_taker_only and qty < top[side]:
                continue  # the side's largest taker is the one who marks it
            total = totals[side]
            share = qty / total if total > 0 else Decimal(0)
            if count < t.min_trades or share < t.min_share or before <= 0:
                continue
            move = (closing - before) * _BPS / before
            if (move if side == "buy" else -move) < t.min_move_bps:
                continue
            alerts.append(self._alert(
                severity="HIGH",
                symbol=symbol,
                keys=[owner, str(close_ns)],
                accounts=accounts,
                users=[owner],
                start_ns=close_ns - self._window,
                end_ns=close_ns,
                score=float(min(Decimal(1), share / 2 + abs(move) / (t.min_move_bps * 4))),
                evidence={
                    "trade_ids": ids,
                    "side": side,
                    "reference_price": figure(before),
                    "closing_price": figure(closing),
                    "move_bps": figure(move.quantize(Decimal("0.1"))),
                    "share_of_volume": figure(share.quantize(Decimal("0.001"))),
                    "aggressive_trades": count,
                },
            ))
        return alerts
