"""Wash trading: the same beneficial owner on both sides of a trade, and pairs of accounts that
round-trip with each other.

* **Same owner** (one account, or two accounts of one user): every such trade is CRITICAL. The
  further same-owner trades of the same accounts within ``episode_gap_ms`` of the last one fold
  into the first alert (the account is halted on the first).
* **Round trips** between two owners: within ``window_ms``, at least ``min_round_trips`` pairs of
  trades in opposite directions between the same two accounts, each pair within
  ``max_quantity_diff`` (relative) and ``max_price_diff_bps`` of each other, and the pair is at
  least ``min_pair_share`` of each account's traded quantity in the symbol in that window (a
  market maker trades with everybody, so no one counterparty is most of its volume). HIGH.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal

from pydantic import Field

from nexus_surveillance.detectors.base import Alert, PatternDetector, Thresholds, figure
from nexus_surveillance.events import SurvEvent

_MS = 1_000_000
_BPS = Decimal(10_000)


class WashTradingThresholds(Thresholds):
    episode_gap_ms: int = Field(default=60_000, ge=0, le=86_400_000)
    window_ms: int = Field(default=120_000, gt=0, le=86_400_000)
    min_round_trips: int = Field(default=2, ge=1, le=1000)
    max_quantity_diff: Decimal = Field(default=Decimal("0.1"), ge=0, le=1)
    max_price_diff_bps: Decimal = Field(default=Decimal(50), ge=0, le=10_000)
    min_pair_share: Decimal = Field(default=Decimal("0.6"), gt=0, le=1)
    max_pair_trades: int = Field(default=200, ge=2, le=10_000)


Trade = tuple[int, str, Decimal, Decimal, str]  # ts, buyer account, quantity, price, trade id


class WashTradingDetector(PatternDetector[WashTradingThresholds]):
    name = "wash_trading"
    thresholds_model = WashTradingThresholds
    KINDS = frozenset({"fill"})
    _STATE = ("_self_last", "_pairs", "_volume", "_pair_alerted")

    def _configure(self) -> None:
        t = self.thresholds
        self._gap = t.episode_gap_ms * _MS
        self._window = t.window_ms * _MS

    def _reset(self) -> None:
        super()._reset()
        # (symbol, account, account) -> ts of the last same-owner trade of that episode
        self._self_last: dict[tuple[str, str, str], int] = {}
        # (symbol, account a, account b), a < b -> recent trades between them
        self._pairs: dict[tuple[str, str, str], deque[Trade]] = {}
        # (symbol, account) -> [deque of (ts, quantity), running total]
        self._volume: dict[tuple[str, str], list[object]] = {}
        # (symbol, a, b) -> ts of the last trade of the pair's alerted episode
        self._pair_alerted: dict[tuple[str, str, str], int] = {}

    def _apply(self, e: SurvEvent) -> list[Alert]:
        if e.kind != "fill" or not e.aggressor:
            return []  # one look per trade: at its taker leg
        maker = e.cp_account_id or ""
        if e.owner == e.cp_owner:
            return self._same_owner(e, maker)
        return self._round_trip(e, maker)

    def _same_owner(self, e: SurvEvent, maker: str) -> list[Alert]:
        a, b = sorted((e.account_id, maker))
        key = (e.symbol, a, b)
        last = self._self_last.get(key)
        self._self_last[key] = e.ts
        if last is not None and e.ts - last <= self._gap:
            return []
        qty = e.fill_quantity or Decimal(0)
        price = e.fill_price or Decimal(0)
        return [self._alert(
            severity="CRITICAL",
            symbol=e.symbol,
            keys=[e.trade_id or e.event_id],
            accounts=[a, b],
            users=[e.owner],
            start_ns=e.ts,
            end_ns=e.ts,
            score=1.0,
            evidence={
                "kind": "same_owner" if a == b else "same_owner_across_accounts",
                "trade_ids": [e.trade_id],
                "order_ids": sorted({e.order_id, e.cp_order_id or ""}),
                "quantity": figure(qty),
                "price": figure(price),
            },
        )]

    def _add_volume(self, symbol: str, account: str, ts: int, qty: Decimal) -> Decimal:
        key = (symbol, account)
        entry = self._volume.get(key)
        if entry is None:
            entry = self._volume[key] = [deque(), Decimal(0)]
        window: deque[tuple[int, Decimal]] = entry[0]  # type: ignore[assignment]
        total: Decimal = entry[1]  # type: ignore[assignment]
        horizon = ts - self._window
        while window and window[0][0] < horizon:
            total -= window.popleft()[1]
        window.append((ts, qty))
        total += qty
        entry[1] = total
        return total

    def _round_trip(self, e: SurvEvent, maker: str) -> list[Alert]:
        ts = e.ts
        qty = e.fill_quantity or Decimal(0)
        vol_taker = self._add_volume(e.symbol, e.account_id, ts, qty)
        vol_maker = self._add_volume(e.symbol, maker, ts, qty)
        a, b = (e.account_id, maker) if e.account_id < maker else (maker, e.account_id)
        key = (e.symbol, a, b)
        trades = self._pairs.get(key)
        if trades is None:
            trades = self._pairs[key] = deque(maxlen=self.thresholds.max_pair_trades)
        horizon = ts - self._window
        while trades and trades[0][0] < horizon:
            trades.popleft()
        buyer = e.account_id if e.side == "buy" else maker
        trades.append((ts, buyer, qty, e.fill_price or Decimal(0), e.trade_id or e.event_id))
        t = self.thresholds
        if len(trades) < 2 * t.min_round_trips:
            return []
        alerted = self._pair_alerted.get(key)
        if alerted is not None and ts - alerted <= self._window:
            self._pair_alerted[key] = ts
            return []
        pair_qty = sum((x[2] for x in trades), Decimal(0))
        share = min(pair_qty / vol_taker, pair_qty / vol_maker) if vol_taker > 0 and vol_maker > 0 else Decimal(0)
        if share < t.min_pair_share:
            return []
        matched = self._match(trades)
        if len(matched) < t.min_round_trips:
            return []
        self._pair_alerted[key] = ts
        ids = sorted({x[4] for pair in matched for x in pair})
        first = min(x[0] for pair in matched for x in pair)
        users = {e.owner, e.cp_owner or maker}
        return [self._alert(
            severity="HIGH",
            symbol=e.symbol,
            keys=ids[:2 * t.min_round_trips],
            accounts=[a, b],
            users=users,
            start_ns=first,
            end_ns=ts,
            score=float(min(Decimal(1), Decimal(len(matched)) / (2 * t.min_round_trips) + share / 2)),
            evidence={
                "kind": "round_trip",
                "trade_ids": ids,
                "round_trips": len(matched),
                "pair_quantity": figure(pair_qty),
                "pair_share": figure(share.quantize(Decimal("0.001"))),
            },
        )]

    def _match(self, trades: deque[Trade]) -> list[tuple[Trade, Trade]]:
        """Greedy chronological matching of each trade with the earliest unmatched one the other
        way round (another buyer), alike in quantity and price.

        The unmatched trades are kept per buyer, in arrival order, and a trade searches only
        the other buyers' (a trade never matches its own buyer's): two accounts trading one
        way, the common case, cost one step per trade instead of a scan of every unmatched one
        (``max_pair_trades`` of them: 200 by default, up to 10,000), on every trade of the pair."""
        open_: dict[str, list[tuple[int, Trade]]] = {}  # buyer: (arrival, trade), unmatched
        matched: list[tuple[Trade, Trade]] = []
        for arrival, trade in enumerate(trades):
            found: tuple[int, str, int] | None = None  # the earliest fit: arrival, buyer, place in its list
            for buyer, waiting in open_.items():
                if buyer == trade[1]:
                    continue
                for place, (came, prior) in enumerate(waiting):
                    if found is not None and came > found[0]:
                        break  # a fit that came earlier is already found
                    if self._alike(prior, trade):
                        found = (came, buyer, place)
                        break
            if found is None:
                open_.setdefault(trade[1], []).append((arrival, trade))
            else:
                matched.append((open_[found[1]].pop(found[2])[1], trade))
        return matched

    def _alike(self, prior: Trade, trade: Trade) -> bool:
        """Whether two trades are alike in quantity and price (``max_quantity_diff``,
        ``max_price_diff_bps`` of the earlier one's price)."""
        t = self.thresholds
        big = max(prior[2], trade[2])
        if big <= 0 or abs(prior[2] - trade[2]) > big * t.max_quantity_diff:
            return False
        return not (prior[3] > 0 and abs(prior[3] - trade[3]) * _BPS > prior[3] * t.max_price_diff_bps)

    def _prune(self, now_ns: int) -> None:
        self._self_last = {k: ts for k, ts in self._self_last.items() if now_ns - ts <= self._gap}
        self._pairs = {k: d for k, d in self._pairs.items() if d and now_ns - d[-1][0] <= self._window}
        self._volume = {k: v for k, v in self._volume.items()
                        if v[0] and now_ns - v[0][-1][0] <= self._window}  # type: ignore[index]
        self._pair_alerted = {k: ts for k, ts in self._pair_alerted.items() if now_ns - ts <= self._window}
