"""A differential test of the instructions beyond plain limit/market: a second reference matcher,
written the slow and obvious way, for stop and stop-limit triggering (trigger order, rounds of
triggers), post-only, iceberg refresh, replace priority rules, and the four self-trade
prevention modes, besides limit, market, IOC, FOK and cancel.

The reference keeps one flat list of resting orders and re-sorts it for every taker by price,
then by a "stamp" that every arrival in the book (including an iceberg's refreshed slice and an
order that lost its priority) takes anew. After every command, its non-book events must equal
the engine's one for one, the engine's whole book must equal the reference's aggregates, and
every ``book`` event must carry a level's aggregate after the command, with every changed level
present.

Not covered here (their references would be the engine again): OCO groups, DAY/GTD expiry, mass
cancel and the price collar; invariant property tests in ``test_matching_properties.py`` cover
them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from nexus_common.instruments import Instrument
from nexus_matching.engine import MatchingEngine

Command = dict[str, Any]
Event = dict[str, Any]
Row = tuple[Any, ...]

SETTINGS = settings(
    max_examples=int(os.environ.get("MATCHING_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    # MATCHING_NO_SHRINK=1: report the first failing journal as found (shrinking one is slow)
    phases=[p for p in Phase if p != Phase.shrink or not os.environ.get("MATCHING_NO_SHRINK")],
)
TS = "2024-05-01T14:30:00.000000Z"
MID = 10_000  # ticks of 0.01
ACCOUNTS = ("alice", "bob", "carol")
STPS = ("cancel_newest", "cancel_oldest", "cancel_both", "decrement")
BAND_BPS = 500  # EngineConfig.market_band_bps default


def price_str(ticks: int) -> str:
    return str(Decimal(ticks) / 100)


def ticks(text: str | None) -> int | None:
    return None if text is None else int(Decimal(text) * 100)


# -- journals ---------------------------------------------------------------------------------


@st.composite
def journals(draw: st.DrawFn, max_size: int = 45) -> list[Command]:
    size = draw(st.integers(min_value=0, max_value=max_size))
    commands: list[Command] = []
    ids: list[str] = []
    for i in range(size):
        kind = draw(
            st.sampled_from(["limit"] * 7 + ["market", "stop", "stop", "replace", "replace", "cancel", "resend"])
        )
        account = draw(st.sampled_from(ACCOUNTS))
        base: Command = {"command_id": f"c{i}", "account_id": account, "symbol": "AAPL", "ts": TS}
        if kind == "resend":
            if commands:
                commands.append(dict(draw(st.sampled_from(commands))))
            continue
        if kind in ("replace", "cancel"):
            if not ids:
                continue
            target = draw(st.sampled_from(ids))
            if draw(st.integers(0, 5)) > 0:  # mostly the owner
                owner = next(c["account_id"] for c in commands if c.get("order_id") == target)
                base["account_id"] = owner
            command = {**base, "type": kind, "order_id": target}
            if kind == "replace":
                fields = draw(st.sets(st.sampled_from(["price", "quantity", "stop_price"]), min_size=1, max_size=2))
                if "price" in fields:
                    command["price"] = price_str(MID + draw(st.integers(-4, 4)))
                if "quantity" in fields:
                    command["quantity"] = str(draw(st.integers(1, 12)))
                if "stop_price" in fields:
                    command["stop_price"] = price_str(MID + draw(st.integers(-4, 4)))
            commands.append(command)
            continue
        order_id = f"o{i}"
        ids.append(order_id)
        side = draw(st.sampled_from(["buy", "sell"]))
        command = {**base, "type": "new", "order_id": order_id, "side": side,
                   "quantity": str(draw(st.integers(1, 10)))}
        if kind == "market":
            command.update(order_type="market", time_in_force=draw(st.sampled_from(["gtc", "ioc", "fok"])))
        elif kind == "stop":
            command["order_type"] = draw(st.sampled_from(["stop", "stop_limit"]))
            command["stop_price"] = price_str(MID + draw(st.integers(-4, 4)))
            if command["order_type"] == "stop_limit":
                command["price"] = price_str(MID + draw(st.integers(-4, 4)))
                if draw(st.integers(0, 3)) == 0:
                    command["display_quantity"] = str(min(draw(st.integers(1, 3)), int(command["quantity"])))
            command["time_in_force"] = draw(st.sampled_from(["gtc", "gtc", "ioc", "fok"]))
        else:
            tif = draw(st.sampled_from(["gtc", "gtc", "gtc", "ioc", "fok"]))
            command.update(order_type="limit", price=price_str(MID + draw(st.integers(-4, 4))), time_in_force=tif)
            if draw(st.integers(0, 3)) == 0:
                command["display_quantity"] = str(min(draw(st.integers(1, 3)), int(command["quantity"])))
            if tif == "gtc" and draw(st.integers(0, 4)) == 0:
                command["post_only"] = True
        if draw(st.integers(0, 2)) == 0:
            command["stp"] = draw(st.sampled_from(STPS))
        commands.append(command)
    return commands


# -- the reference ----------------------------------------------------------------------------


@dataclass(eq=False)
class Ord:
    oid: str
    account: str
    buy: bool
    kind: str  # limit, market, stop, stop_limit (a triggered stop becomes market, stop_limit limit)
    price: int  # 0 without a limit
    stop: int  # 0 without a stop price
    quantity: int
    tif: str
    stp: str | None
    peak: int
    post_only: bool
    arrival: int
    shown: int = 0  # in the book: the displayed lots; a taker: its remaining lots
    hidden: int = 0
    filled: int = 0
    stamp: int = 0  # time priority in the book

    @property
    def open(self) -> int:
        return self.shown + self.hidden


class Reference:
    def __init__(self) -> None:
        self.book: list[Ord] = []
        self.parked: list[Ord] = []
        self.seen: set[str] = set()
        self.last = 0
        self.arrivals = 0
        self.stamps = 0
        self.events: list[Row] = []

    # -- queries --

    def levels(self) -> dict[tuple[str, int], tuple[int, int]]:
        result: dict[tuple[str, int], tuple[int, int]] = {}
        for o in self.book:
            key = ("buy" if o.buy else "sell", o.price)
            qty, count = result.get(key, (0, 0))
            result[key] = (qty + o.shown, count + 1)
        return result

    def makers(self, taker: Ord, limit: int | None) -> list[Ord]:
        """Resting orders a taker may meet, in priority order (``limit`` None: any price)."""
        mine = [o for o in self.book if o.buy != taker.buy]
        if limit is not None:
            mine = [o for o in mine if (o.price <= limit if taker.buy else o.price >= limit)]
        return sorted(mine, key=lambda o: (o.price if taker.buy else -o.price, o.stamp))

    def live(self, oid: str) -> Ord | None:
        return next((o for o in [*self.book, *self.parked] if o.oid == oid), None)

    def rest(self, o: Ord) -> None:
        self.stamps += 1
        o.stamp = self.stamps
        self.book.append(o)

    # -- events --

    def emit(self, *row: Any) -> None:
        self.events.append(row)

    def cancelled(self, o: Ord, reason: str, remaining: int | None = None) -> None:
        self.emit("cancelled", o.oid, o.open if remaining is None else remaining, reason)

    def replaced(self, o: Ord, kept: bool, reason: str) -> None:
        price = o.price if o.kind in ("limit", "stop_limit") else None
        stop = o.stop if o.kind in ("stop", "stop_limit") else None
        self.emit("replaced", o.oid, price, stop, o.quantity, o.open, kept, reason)

    # -- commands --

    def process(self, c: Command) -> list[Row]:
        self.events = []
        if c["type"] == "new":
            self.new(c)
        elif c["type"] == "cancel":
            self.cancel(c)
        else:
            self.replace(c)
        return self.events

    def new(self, c: Command) -> None:
        if c["order_id"] in self.seen:
            return
        self.seen.add(c["order_id"])
        kind = c["order_type"]
        peak = int(c.get("display_quantity") or 0)
        quantity = int(c["quantity"])
        o = Ord(
            c["order_id"], c["account_id"], c["side"] == "buy", kind, ticks(c.get("price")) or 0,
            ticks(c.get("stop_price")) or 0, quantity, c["time_in_force"], c.get("stp"),
            0 if peak == quantity else peak, bool(c.get("post_only")), 0, shown=quantity,
        )
        if o.post_only and self.makers(o, o.price):
            self.emit("rejected", o.oid, "post_only_would_take")
            return
        self.arrivals += 1
        o.arrival = self.arrivals
        self.emit("accepted", o.oid)
        self.run_new(o)

    def run_new(self, o: Ord) -> None:
        if o.kind in ("stop", "stop_limit"):
            if self.reached(o):
                self.trigger(o)
            else:
                self.parked.append(o)
        else:
            self.execute(o)
        self.cascade()

    def reached(self, o: Ord) -> bool:
        return bool(self.last) and (self.last >= o.stop if o.buy else self.last <= o.stop)

    def trigger(self, o: Ord) -> None:
        self.emit("triggered", o.oid, self.last)
        o.kind = "market" if o.kind == "stop" else "limit"
        self.execute(o)

    def cascade(self) -> None:
        """Rounds: every parked stop the last price reaches, by arrival, each executed fully."""
        while self.last:
            due = sorted((o for o in self.parked if self.reached(o)), key=lambda o: o.arrival)
            if not due:
                return
            self.parked = [o for o in self.parked if o not in due]
            for o in due:
                self.trigger(o)

    def execute(self, o: Ord) -> None:
        market = o.kind == "market"
        opposite = [m for m in self.book if m.buy != o.buy]
        if market:
            if not opposite:
                self.cancelled(o, "fok" if o.tif == "fok" else "market_no_liquidity")
                return
            best = min(m.price for m in opposite) if o.buy else max(m.price for m in opposite)
            band = best * BAND_BPS // 10_000
            limit = best + band if o.buy else best - band
        else:
            limit = o.price
        if o.tif == "fok" and not self.can_fill(o, limit):
            self.cancelled(o, "fok")
            return
        stopped = False
        while o.shown and not stopped:
            makers = self.makers(o, limit)  # re-sorted at every step: the best maker now
            if not makers:
                break
            maker = makers[0]
            if maker.account == o.account and (o.stp or maker.stp):
                mode = o.stp or maker.stp
                if mode == "cancel_newest":
                    stopped = True
                elif mode in ("cancel_oldest", "cancel_both"):
                    self.book.remove(maker)
                    self.cancelled(maker, "self_trade")
                    stopped = mode == "cancel_both"
                else:  # decrement both by the smaller open quantity
                    cut = min(o.shown, maker.open)
                    if cut >= maker.open:
                        self.book.remove(maker)
                        self.cancelled(maker, "self_trade")
                    else:
                        from_hidden = min(cut, maker.hidden)
                        maker.hidden -= from_hidden
                        maker.shown -= cut - from_hidden
                        maker.quantity -= cut
                        self.replaced(maker, True, "self_trade")
                    o.shown -= cut
                    o.quantity -= cut
                    if o.shown:
                        self.replaced(o, True, "self_trade")
                    else:
                        self.cancelled(o, "self_trade", remaining=cut)
                        return
                continue
            lots = min(maker.shown, o.shown)
            maker.shown -= lots
            maker.filled += lots
            o.shown -= lots
            o.filled += lots
            self.last = maker.price
            self.emit("trade", maker.price, lots, maker.oid, o.oid, maker.filled, maker.open, o.filled, o.shown)
            if not maker.shown:
                self.book.remove(maker)
                if maker.hidden:  # the next slice, at the back of its price's queue
                    maker.shown = min(maker.peak, maker.hidden)
                    maker.hidden -= maker.shown
                    self.rest(maker)
        self.finish(o, stopped, market)

    def finish(self, o: Ord, stopped: bool, market: bool) -> None:
        if not o.shown:
            return
        if stopped:
            self.cancelled(o, "self_trade")
        elif market:
            self.cancelled(o, "market_protection" if any(m.buy != o.buy for m in self.book) else "market_no_liquidity")
        elif o.tif in ("ioc", "fok"):
            self.cancelled(o, o.tif)
        else:
            if o.peak and o.shown > o.peak:
                o.hidden = o.shown - o.peak
                o.shown = o.peak
            self.rest(o)

    def can_fill(self, o: Ord, limit: int) -> bool:
        """Shown lots in priority order, up to an order self-trade prevention stops at; an
        iceberg's reserve shows again behind every order at its price, so it counts only once
        the taker has met all of them."""
        available = reserve = 0
        price = None
        for maker in self.makers(o, limit):
            if maker.price != price:
                available, reserve, price = available + reserve, 0, maker.price
                if available >= o.shown:
                    return True
            if maker.account == o.account and (o.stp or maker.stp):
                return False
            available += maker.shown
            if available >= o.shown:
                return True
            reserve += maker.hidden
        return available + reserve >= o.shown

    def cancel(self, c: Command) -> None:
        o = self.live(c["order_id"])
        if o is None:
            self.emit("cancel_rejected", c["order_id"], "unknown_order")
        elif o.account != c["account_id"]:
            self.emit("cancel_rejected", c["order_id"], "not_owner")
        else:
            (self.book if o in self.book else self.parked).remove(o)
            self.cancelled(o, "user")

    def replace(self, c: Command) -> None:
        if c["command_id"] in self.seen:  # a resent replace is dropped
            return
        self.seen.add(c["command_id"])
        o = self.live(c["order_id"])
        reason = None
        if o is None:
            reason = "unknown_order"
        elif o.account != c["account_id"]:
            reason = "not_owner"
        elif "price" in c and o.kind not in ("limit", "stop_limit"):
            reason = "unexpected_price"
        elif "stop_price" in c and o not in self.parked:
            reason = "unexpected_stop_price"
        elif "quantity" in c and int(c["quantity"]) <= o.filled:
            reason = "quantity_below_filled"
        if reason is None:
            assert o is not None
            price = ticks(c["price"]) if "price" in c else o.price
            assert price is not None
            if o.post_only and o in self.book and self.makers(o, price):
                reason = "post_only_would_take"
        if reason is not None:
            self.emit("replace_rejected", c["order_id"], reason)
            return
        assert o is not None
        stop = ticks(c["stop_price"]) if "stop_price" in c else o.stop
        quantity = int(c["quantity"]) if "quantity" in c else o.quantity
        if price == o.price and stop == o.stop and quantity <= o.quantity:
            cut = o.quantity - quantity
            from_hidden = min(cut, o.hidden)
            o.hidden -= from_hidden
            o.shown -= cut - from_hidden
            o.quantity = quantity
            self.replaced(o, True, "user")
            return
        (self.book if o in self.book else self.parked).remove(o)
        o.price, o.stop, o.quantity = price, stop, quantity
        o.shown, o.hidden = quantity - o.filled, 0
        self.arrivals += 1
        o.arrival = self.arrivals
        self.replaced(o, False, "user")
        self.run_new(o)


# -- comparing --------------------------------------------------------------------------------


def normalized(e: Event) -> Row:
    kind = e["type"]
    oid = e.get("order_id")
    if kind == "accepted":
        return (kind, oid)
    if kind in ("rejected", "cancel_rejected", "replace_rejected"):
        return (kind, oid, e["reason"])
    if kind == "trade":
        return (
            kind, ticks(e["price"]), int(e["quantity"]), e["maker_order_id"], e["taker_order_id"],
            int(e["maker_filled_quantity"]), int(e["maker_remaining_quantity"]),
            int(e["taker_filled_quantity"]), int(e["taker_remaining_quantity"]),
        )
    if kind == "cancelled":
        return (kind, oid, int(e["remaining_quantity"]), e["reason"])
    if kind == "replaced":
        return (
            kind, oid, ticks(e["price"]), ticks(e["stop_price"]), int(e["quantity"]),
            int(e["remaining_quantity"]), e["kept_priority"], e["reason"],
        )
    assert kind == "triggered", kind
    return (kind, oid, ticks(e["trigger_price"]))


def engine_levels(engine: MatchingEngine) -> dict[tuple[str, int], tuple[int, int]]:
    depth = engine.book_depth("AAPL", 1_000)
    return {
        (side, price): (qty, count)
        for name, side in (("bids", "buy"), ("asks", "sell"))
        for price, qty, count in depth[name]
    }


@SETTINGS
@given(journal=journals())
def test_engine_agrees_with_the_reference_on_every_instruction(journal: list[Command], checked: Any) -> None:
    # GIVEN a random journal of limit, market, stop, stop-limit, iceberg, post-only and
    # self-trade-prevention orders, replaces, cancels and resends
    venue = checked(MatchingEngine({"AAPL": Instrument(symbol="AAPL", tick_size=Decimal("0.01"), lot_size=1)}))
    reference = Reference()
    for command in journal:
        before = reference.levels()
        # WHEN both process each command
        events = venue.process(command)
        expected = reference.process(command)
        after = reference.levels()
        # THEN the order events agree one for one
        assert [normalized(e) for e in events if e["type"] != "book"] == expected, command
        # AND the books agree
        assert engine_levels(venue.engine) == after, command
        # AND every book event carries its level's state after the command, every changed level
        # has one
        deltas = {
            (e["side"], ticks(e["price"])): (int(e["quantity"]), e["orders"]) for e in events if e["type"] == "book"
        }
        for level, state in deltas.items():
            assert after.get(level, (0, 0)) == state, (command, level)
        changed = {k for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
        assert changed <= deltas.keys(), command


def test_the_last_price_is_the_last_trade_not_a_level_left_by_self_trade(checked: Any) -> None:
    venue = checked(MatchingEngine({"AAPL": Instrument(symbol="AAPL", tick_size=Decimal("0.01"), lot_size=1)}))
    base = {"type": "new", "symbol": "AAPL", "order_type": "limit", "time_in_force": "gtc", "ts": TS}
    # GIVEN bob's ask at 100.00 and alice's own ask at 100.01 (self-trade prevention: cancel oldest)
    venue.process({**base, "command_id": "1", "order_id": "s1", "account_id": "bob", "side": "sell",
                   "price": "100.00", "quantity": "1"})
    venue.process({**base, "command_id": "2", "order_id": "s2", "account_id": "alice", "side": "sell",
                   "price": "100.01", "quantity": "1", "stp": "cancel_oldest"})
    # WHEN alice buys 2 up to 100.01: one lot trades at 100.00, her own ask is cancelled
    events = venue.process({**base, "command_id": "3", "order_id": "b1", "account_id": "alice", "side": "buy",
                            "price": "100.01", "quantity": "2"})
    assert [(e["type"], e.get("price"), e.get("reason")) for e in events if e["type"] != "book"] == [
        ("accepted", "100.01", None), ("trade", "100", None), ("cancelled", None, "self_trade"),
    ]
    # THEN the last price is that of the trade, not of the level left without one
    assert venue.engine.last_price("AAPL") == 10_000
