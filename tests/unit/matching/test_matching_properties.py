"""Properties of the matching engine on random journals, and a differential test against a tiny
reference matcher that is obviously correct (it re-sorts plain lists on every order).

A journal is a list of commands over two instruments (AAPL: tick 0.01, lot 1; XBT: tick 0.5,
lot 0.0001): limit and market orders of every time in force, cancels (own, someone else's,
unknown), resends of earlier commands, and invalid orders. Every emitted event is checked
against the shared-kernel models by the ``checked`` wrapper of ``conftest.py``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nexus_common.instruments import Instrument
from nexus_matching.engine import MatchingEngine

Command = dict[str, Any]
Event = dict[str, Any]

SETTINGS = settings(
    max_examples=int(os.environ.get("MATCHING_EXAMPLES", "120")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# symbol -> (tick, lot, reference price in ticks)
MARKETS: dict[str, tuple[Decimal, Decimal, int]] = {
    "AAPL": (Decimal("0.01"), Decimal("1"), 10_000),
    "XBT": (Decimal("0.5"), Decimal("0.0001"), 120_000),
}
ACCOUNTS = ("alice", "bob", "carol")


# -- journals ---------------------------------------------------------------------------------


@st.composite
def journals(draw: st.DrawFn, max_size: int = 40) -> list[Command]:
    """Random command journals (see the module doc); order ids are ``o<index>``."""
    size = draw(st.integers(min_value=0, max_value=max_size))
    commands: list[Command] = []
    placed: dict[str, tuple[str, str]] = {}  # order id -> (symbol, account)
    for i in range(size):
        kind = draw(
            st.sampled_from(
                ["limit"] * 8 + ["market", "cancel", "cancel", "cancel", "resend", "invalid"]
            )
        )
        ts = f"2024-05-01T14:30:{i % 60:02d}.{i:06d}Z"
        if kind == "resend" and commands:
            commands.append(dict(draw(st.sampled_from(commands))))
            continue
        if kind == "cancel" or (kind == "resend" and not commands):
            known_target = draw(st.integers(min_value=0, max_value=3)) > 0
            if placed and known_target:
                target = draw(st.sampled_from(sorted(placed)))
            else:
                target = f"o{draw(st.integers(min_value=0, max_value=max(size, 1)))}"
            symbol, account = placed.get(target, ("AAPL", "alice"))
            if draw(st.integers(min_value=0, max_value=4)) == 0:
                account = draw(st.sampled_from(ACCOUNTS))
            if draw(st.integers(min_value=0, max_value=19)) == 0:
                symbol = draw(st.sampled_from(["AAPL", "XBT", "ZZZ"]))
            commands.append(
                {
                    "type": "cancel",
                    "command_id": f"c{i}",
                    "order_id": target,
                    "account_id": account,
                    "symbol": symbol,
                    "ts": ts,
                }
            )
            continue
        symbol = draw(st.sampled_from(sorted(MARKETS)))
        tick, lot, mid = MARKETS[symbol]
        order_id = f"o{i}"
        account = draw(st.sampled_from(ACCOUNTS))
        command: Command = {
            "type": "new",
            "command_id": f"c{i}",
            "order_id": order_id,
            "account_id": account,
            "symbol": symbol,
            "side": draw(st.sampled_from(["buy", "sell"])),
            "order_type": "market" if kind == "market" else "limit",
            "quantity": str(lot * draw(st.integers(min_value=1, max_value=10))),
            "time_in_force": draw(st.sampled_from(["gtc", "gtc", "day", "ioc", "fok"])),
            "ts": ts,
        }
        if kind != "market":
            command["price"] = str(tick * (mid + draw(st.integers(min_value=-5, max_value=5))))
        if kind == "invalid":
            flaw = draw(
                st.sampled_from(
                    ["symbol", "off_tick", "zero_qty", "off_lot", "market_price", "no_price"]
                )
            )
            if flaw == "symbol":
                command["symbol"] = "ZZZ"
            elif flaw == "off_tick":
                command["price"] = str(tick * mid + tick / 2)
            elif flaw == "zero_qty":
                command["quantity"] = "0"
            elif flaw == "off_lot":
                command["quantity"] = str(lot * 3 + lot / 4)
            elif flaw == "market_price":
                command["order_type"] = "market"
                command["price"] = str(tick * mid)
            else:
                command.pop("price", None)
                command["order_type"] = "limit"
        placed[order_id] = (command["symbol"], account)
        commands.append(command)
    return commands


def make_instruments() -> dict[str, Instrument]:
    return {
        symbol: Instrument(symbol=symbol, tick_size=tick, lot_size=lot)
        for symbol, (tick, lot, _) in MARKETS.items()
    }


def make_engine() -> MatchingEngine:
    return MatchingEngine(make_instruments())


def run(journal: list[Command], checked: Any) -> tuple[MatchingEngine, list[list[Event]]]:
    venue = checked(make_engine())
    return venue.engine, [venue.process(command) for command in journal]


# -- the reference matcher --------------------------------------------------------------------


@dataclass
class RefOrder:
    order_id: str
    account: str
    side: str
    price: Decimal
    open: Decimal
    arrival: int
    filled: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)


class Reference:
    """Price-time priority the slow, obvious way: filter and sort lists on every order, and find
    book deltas by comparing every level's aggregate before and after the command."""

    def __init__(self) -> None:
        self.books: dict[str, list[RefOrder]] = {symbol: [] for symbol in MARKETS}
        self.seen: set[str] = set()
        self.arrivals = 0

    def levels(self, symbol: str) -> dict[tuple[str, Decimal], tuple[Decimal, int]]:
        result: dict[tuple[str, Decimal], tuple[Decimal, int]] = {}
        for o in self.books[symbol]:
            qty, count = result.get((o.side, o.price), (Decimal(0), 0))
            result[(o.side, o.price)] = (qty + o.open, count + 1)
        return result

    def process(self, c: Command) -> list[tuple[Any, ...]]:
        symbol = c["symbol"]
        if c["type"] == "cancel":
            return self._cancel(c)
        if c["order_id"] in self.seen:
            return []
        self.seen.add(c["order_id"])
        reason = self._invalid(c)
        if reason:
            return [("rejected", c["order_id"], reason)]
        before = self.levels(symbol)
        events = self._new(c)
        return events + self._deltas(before, self.levels(symbol))

    def _invalid(self, c: Command) -> str | None:
        if c["symbol"] not in MARKETS:
            return "unknown_symbol"
        tick, lot, _ = MARKETS[c["symbol"]]
        price = c.get("price")
        if c["order_type"] == "limit" and price is None:
            return "missing_price"
        if c["order_type"] == "market" and price is not None:
            return "unexpected_price"
        if price is not None and Decimal(price) % tick:
            return "price_off_tick"
        if Decimal(c["quantity"]) <= 0:
            return "invalid_quantity"
        if Decimal(c["quantity"]) % lot:
            return "quantity_off_lot"
        return None

    def _new(self, c: Command) -> list[tuple[Any, ...]]:
        book = self.books[c["symbol"]]
        side, oid, account, tif = c["side"], c["order_id"], c["account_id"], c["time_in_force"]
        market = c["order_type"] == "market"
        price = None if market else Decimal(c["price"])
        quantity = Decimal(c["quantity"])
        events: list[tuple[Any, ...]] = [
            ("accepted", oid, side, c["order_type"], price, quantity, tif)
        ]

        def crosses(o: RefOrder) -> bool:
            if o.side == side:
                return False
            if price is None:
                return True
            return o.price <= price if side == "buy" else o.price >= price

        makers = sorted(
            (o for o in book if crosses(o)),
            key=lambda o: (o.price if side == "buy" else -o.price, o.arrival),
        )
        if tif == "fok" and sum(o.open for o in makers) < quantity:
            return [*events, ("cancelled", oid, quantity, "fok")]
        remaining, filled, notional = quantity, Decimal(0), Decimal(0)
        for o in makers:
            if not remaining:
                break
            lots = min(o.open, remaining)
            o.open -= lots
            o.filled += lots
            o.notional += lots * o.price
            remaining -= lots
            filled += lots
            notional += lots * o.price
            events.append(
                (
                    *("trade", o.price, lots, side, o.order_id, o.account, oid, account),
                    *(o.filled, o.notional, o.open, filled, notional, remaining),
                )
            )
        book[:] = [o for o in book if o.open]
        if remaining:
            if market:
                events.append(("cancelled", oid, remaining, "market_no_liquidity"))
            elif tif == "ioc":
                events.append(("cancelled", oid, remaining, "ioc"))
            else:
                self.arrivals += 1
                assert price is not None
                book.append(
                    RefOrder(oid, account, side, price, remaining, self.arrivals, filled, notional)
                )
        return events

    def _cancel(self, c: Command) -> list[tuple[Any, ...]]:
        book = self.books.get(c["symbol"], [])
        found = [o for o in book if o.order_id == c["order_id"]]
        if not found:
            return [("cancel_rejected", c["order_id"], "unknown_order")]
        order = found[0]
        if order.account != c["account_id"]:
            return [("cancel_rejected", c["order_id"], "not_owner")]
        before = self.levels(c["symbol"])
        book.remove(order)
        after = self.levels(c["symbol"])
        return [("cancelled", order.order_id, order.open, "user"), *self._deltas(before, after)]

    @staticmethod
    def _deltas(
        before: dict[tuple[str, Decimal], tuple[Decimal, int]],
        after: dict[tuple[str, Decimal], tuple[Decimal, int]],
    ) -> list[tuple[Any, ...]]:
        changed = [k for k in set(before) | set(after) if before.get(k) != after.get(k)]
        bids = sorted((k for k in changed if k[0] == "buy"), key=lambda k: -k[1])
        asks = sorted((k for k in changed if k[0] == "sell"), key=lambda k: k[1])
        return [("book", *k, *after.get(k, (Decimal(0), 0))) for k in bids + asks]


def normalized(event: Event) -> tuple[Any, ...]:
    """An engine event in the reference's terms (no envelope, decimals as Decimal)."""
    d = Decimal
    kind = event["type"]
    if kind == "accepted":
        price = None if event["price"] is None else d(event["price"])
        return (
            *(kind, event["order_id"], event["side"], event["order_type"], price),
            *(d(event["quantity"]), event["time_in_force"]),
        )
    if kind == "rejected":
        return (kind, event["order_id"], event["reason"])
    if kind == "trade":
        return (
            kind,
            d(event["price"]),
            d(event["quantity"]),
            event["aggressor_side"],
            event["maker_order_id"],
            event["maker_account_id"],
            event["taker_order_id"],
            event["taker_account_id"],
            d(event["maker_filled_quantity"]),
            d(event["maker_filled_notional"]),
            d(event["maker_remaining_quantity"]),
            d(event["taker_filled_quantity"]),
            d(event["taker_filled_notional"]),
            d(event["taker_remaining_quantity"]),
        )
    if kind == "cancelled":
        return (kind, event["order_id"], d(event["remaining_quantity"]), event["reason"])
    if kind == "cancel_rejected":
        return (kind, event["order_id"], event["reason"])
    assert kind == "book"
    return (kind, event["side"], d(event["price"]), d(event["quantity"]), event["orders"])


# -- properties -------------------------------------------------------------------------------


@SETTINGS
@given(journal=journals())
def test_engine_agrees_with_the_reference_matcher(journal: list[Command], checked: Any) -> None:
    # GIVEN a random journal, WHEN both the engine and the reference process it
    _, outputs = run(journal, checked)
    reference = Reference()
    # THEN every command gives the same events, in the same order
    for command, events in zip(journal, outputs, strict=True):
        assert [normalized(e) for e in events] == reference.process(command), command


@SETTINGS
@given(journal=journals())
def test_book_is_never_crossed_at_rest_and_quantity_is_conserved(
    journal: list[Command], checked: Any
) -> None:
    venue = checked(make_engine())
    submitted: dict[str, Decimal] = {}
    filled: defaultdict[str, Decimal] = defaultdict(Decimal)
    cancelled: defaultdict[str, Decimal] = defaultdict(Decimal)
    for command in journal:
        for event in venue.process(command):
            if event["type"] == "accepted":
                submitted[event["order_id"]] = Decimal(event["quantity"])
            elif event["type"] == "trade":
                quantity = Decimal(event["quantity"])
                for role in ("maker", "taker"):
                    order_id = event[f"{role}_order_id"]
                    filled[order_id] += quantity
                    # the cumulative fields agree with the running totals
                    assert Decimal(event[f"{role}_filled_quantity"]) == filled[order_id]
                    assert (
                        Decimal(event[f"{role}_remaining_quantity"])
                        == submitted[order_id] - filled[order_id]
                    )
            elif event["type"] == "cancelled":
                cancelled[event["order_id"]] += Decimal(event["remaining_quantity"])
        # THEN after every command the book is not crossed
        for symbol in MARKETS:
            depth = venue.engine.book_depth(symbol, 1)
            if depth["bids"] and depth["asks"]:
                assert depth["bids"][0][0] < depth["asks"][0][0]
    # AND for every order: filled + open + cancelled == submitted
    open_qty: defaultdict[str, Decimal] = defaultdict(Decimal)
    for symbol, book in venue.engine.snapshot()["books"].items():
        lot = MARKETS[symbol][1]
        for row in book["bids"] + book["asks"]:
            open_qty[row[0]] += lot * (row[7] + row[8])
    assert set(open_qty) <= set(submitted)
    for order_id, quantity in submitted.items():
        assert filled[order_id] + open_qty[order_id] + cancelled[order_id] == quantity, order_id


@SETTINGS
@given(journal=journals())
def test_makers_fill_in_price_then_time_priority(journal: list[Command], checked: Any) -> None:
    venue = checked(make_engine())
    arrival: dict[str, int] = {}  # order id -> seq of its accepted event (per symbol, monotonic)
    for command in journal:
        # GIVEN the resting orders before the command, in price-time priority computed here
        books = venue.engine.snapshot()["books"]
        events = venue.process(command)
        for event in events:
            if event["type"] == "accepted":
                arrival[event["order_id"]] = event["seq"]
        made = [e for e in events if e["type"] == "trade"]
        if not made:
            continue
        # WHEN the command traded
        tick, lot, _ = MARKETS[command["symbol"]]
        buy = command["side"] == "buy"
        rows = books.get(command["symbol"], {}).get("asks" if buy else "bids", [])
        queue = sorted(rows, key=lambda r: (r[4] if buy else -r[4], arrival[r[0]]))
        # (the snapshot keeps the queue in exactly that order too)
        assert [r[0] for r in queue] == [r[0] for r in rows]
        # THEN the makers are a prefix of the queue, each at its own price, and all but the last
        # were used up
        assert [e["maker_order_id"] for e in made] == [r[0] for r in queue[: len(made)]]
        for event, row in zip(made, queue, strict=False):
            assert Decimal(event["price"]) == tick * row[4]
        assert all(e["maker_remaining_quantity"] == "0" for e in made[:-1])
        assert all(
            Decimal(e["quantity"]) == lot * r[7] for e, r in zip(made[:-1], queue, strict=False)
        )


@SETTINGS
@given(journal=journals())
def test_fok_is_all_or_nothing(journal: list[Command], checked: Any) -> None:
    venue = checked(make_engine())
    for command in journal:
        before = venue.engine.snapshot()["books"]
        events = venue.process(command)
        if not events or events[0]["type"] != "accepted" or events[0]["time_in_force"] != "fok":
            continue
        quantity = Decimal(events[0]["quantity"])
        traded = sum((Decimal(e["quantity"]) for e in events if e["type"] == "trade"), Decimal(0))
        if traded:
            # THEN either it filled completely, with no cancel...
            assert traded == quantity
            assert "cancelled" not in [e["type"] for e in events]
        else:
            # ...or nothing happened at all but its cancellation
            assert [e["type"] for e in events] == ["accepted", "cancelled"]
            assert events[1]["reason"] == "fok"
            assert Decimal(events[1]["remaining_quantity"]) == quantity
            assert venue.engine.snapshot()["books"] == before


@SETTINGS
@given(journal=journals(), split=st.integers(min_value=0, max_value=40), epoch=st.integers(0, 3))
def test_snapshot_restore_continues_like_an_uninterrupted_run(
    journal: list[Command], split: int, epoch: int, checked: Any
) -> None:
    # GIVEN a journal cut in two
    split = min(split, len(journal))
    first, second = journal[:split], journal[split:]
    # WHEN one engine runs it all, and another runs J1, is snapshotted through JSON and restored
    uninterrupted = checked(make_engine())
    for command in first:
        uninterrupted.process(command)
    uninterrupted.engine.set_epoch(epoch)
    expected = [uninterrupted.process(command) for command in second]

    interrupted = make_engine()
    for command in first:
        interrupted.process(command)
    interrupted.set_epoch(epoch)
    state = json.loads(json.dumps(interrupted.snapshot()))
    restored = checked(MatchingEngine.restore(state, make_instruments()))
    # THEN the restored engine emits exactly the same J2 events and ends in the same state
    assert [restored.process(command) for command in second] == expected
    assert restored.engine.snapshot() == uninterrupted.engine.snapshot()


@SETTINGS
@given(journal=journals())
def test_same_journal_twice_gives_identical_events(journal: list[Command], checked: Any) -> None:
    first_engine, first = run(journal, checked)
    second_engine, second = run(journal, checked)
    assert first == second
    assert json.dumps(first_engine.snapshot()) == json.dumps(second_engine.snapshot())


# -- robustness -------------------------------------------------------------------------------

_FIELDS = (
    "type",
    "command_id",
    "order_id",
    "account_id",
    "symbol",
    "side",
    "order_type",
    "price",
    "quantity",
    "time_in_force",
    "ts",
)
_GOOD_VALUES = {
    "type": st.sampled_from(["new", "cancel", "amend"]),
    "command_id": st.sampled_from(["c1", "c2", ""]),
    "order_id": st.sampled_from(["o1", "o2", "o3"]),
    "account_id": st.sampled_from(["alice", "bob"]),
    "symbol": st.sampled_from(["AAPL", "XBT", "ZZZ"]),
    "side": st.sampled_from(["buy", "sell"]),
    "order_type": st.sampled_from(["limit", "market"]),
    "price": st.sampled_from(["100", "100.01", "60000.5", "0.001"]),
    "quantity": st.sampled_from(["1", "3", "0.0001", "2.5"]),
    "time_in_force": st.sampled_from(["gtc", "ioc", "fok", "day"]),
    "ts": st.sampled_from(["2024-05-01T14:30:00Z", "2024-05-01T14:30:00.000001+00:00"]),
}
_JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.decimals(allow_nan=True, allow_infinity=True),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@st.composite
def garbage_commands(draw: st.DrawFn) -> Any:
    if draw(st.integers(min_value=0, max_value=19)) == 0:
        return draw(_JUNK)
    command: dict[Any, Any] = {}
    for field in _FIELDS:
        choice = draw(st.integers(min_value=0, max_value=9))
        if choice < 6:
            command[field] = draw(_GOOD_VALUES[field])
        elif choice < 9:
            command[field] = draw(_JUNK)
    if draw(st.booleans()):
        command[draw(st.text(max_size=5))] = draw(_JUNK)
    return command


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands=st.lists(garbage_commands(), max_size=30))
def test_garbage_commands_never_raise_and_events_stay_valid(
    commands: list[Any], checked: Any
) -> None:
    # GIVEN any sequence of junk and half-valid commands
    venue = checked(make_engine())
    dropped = 0
    for command in commands:
        # WHEN processed, THEN no exception and every event checks out (inside ``checked``)
        events = venue.process(command)
        if not events:
            dropped = venue.engine.dropped_commands
    # AND the state can still be snapshotted and restored
    state = json.loads(json.dumps(venue.engine.snapshot()))
    assert MatchingEngine.restore(state, make_instruments()).snapshot() == state
    assert venue.engine.dropped_commands >= dropped


# -- every order type and instruction -----------------------------------------------------------


@st.composite
def rich_journals(draw: st.DrawFn, max_size: int = 40) -> list[Command]:
    """Journals over AAPL with every command type: limit (iceberg, post-only, stp, day, gtd),
    market, stop, stop-limit, OCO, replace, cancel, mass cancel and clock, time moving forward."""
    size = draw(st.integers(min_value=0, max_value=max_size))
    commands: list[Command] = []
    ids: list[str] = []
    minute = 0
    for i in range(size):
        minute += draw(st.integers(min_value=0, max_value=3))
        ts = f"2024-05-01T{19 + minute // 60:02d}:{minute % 60:02d}:00Z"
        kind = draw(st.sampled_from(["limit"] * 6 + ["market", "stop", "oco", "replace", "cancel", "mass", "clock"]))
        account = draw(st.sampled_from(ACCOUNTS))
        base: Command = {"command_id": f"c{i}", "account_id": account, "symbol": "AAPL", "ts": ts}
        if kind in ("replace", "cancel") and ids:
            target = draw(st.sampled_from(ids))
            command = {**base, "type": kind, "order_id": target}
            if kind == "replace":
                choice = draw(st.integers(min_value=0, max_value=2))
                if choice != 1:
                    command["quantity"] = str(draw(st.integers(min_value=1, max_value=12)))
                if choice != 0:
                    command["price"] = str(Decimal("0.01") * (10_000 + draw(st.integers(-5, 5))))
            commands.append(command)
            continue
        if kind == "mass":
            commands.append({**base, "type": "mass_cancel"})
            continue
        if kind == "clock":
            commands.append({"type": "clock", "command_id": f"c{i}", "ts": ts})
            continue
        side = draw(st.sampled_from(["buy", "sell"]))
        quantity = str(draw(st.integers(min_value=1, max_value=10)))
        price = Decimal("0.01") * (10_000 + draw(st.integers(min_value=-5, max_value=5)))
        order_id = f"o{i}"
        ids.append(order_id)
        if kind == "oco":
            gap = draw(st.integers(min_value=1, max_value=4))
            step = gap * Decimal("0.01")
            take, stop = (price + step, price) if side == "sell" else (price, price + step)
            command = {**base, "type": "oco", "order_id": order_id, "side": side, "quantity": quantity,
                       "price": str(take), "stop_price": str(stop)}
            ids.extend((f"{order_id}.tp", f"{order_id}.sl"))
            commands.append(command)
            continue
        command = {**base, "type": "new", "order_id": order_id, "side": side, "quantity": quantity}
        tif = draw(st.sampled_from(["gtc", "gtc", "day", "gtd", "ioc", "fok"]))
        command["time_in_force"] = tif
        if tif == "gtd":
            command["expire_at"] = f"2024-05-01T{19 + (minute + 2) // 60:02d}:{(minute + 2) % 60:02d}:00Z"
        if kind == "market":
            command["order_type"] = "market"
        elif kind == "stop":
            command["order_type"] = draw(st.sampled_from(["stop", "stop_limit"]))
            command["stop_price"] = str(price)
            if command["order_type"] == "stop_limit":
                command["price"] = str(price + draw(st.integers(-2, 2)) * Decimal("0.01"))
        else:
            command["order_type"] = "limit"
            command["price"] = str(price)
            if draw(st.integers(min_value=0, max_value=4)) == 0:
                command["display_quantity"] = str(draw(st.integers(min_value=1, max_value=3)))
            if tif not in ("ioc", "fok") and draw(st.integers(min_value=0, max_value=5)) == 0:
                command["post_only"] = True
        if draw(st.integers(min_value=0, max_value=2)) == 0:
            command["stp"] = draw(st.sampled_from(["cancel_newest", "cancel_oldest", "cancel_both", "decrement"]))
        commands.append(command)
    return commands


def make_aapl() -> MatchingEngine:
    return MatchingEngine({"AAPL": Instrument(symbol="AAPL", tick_size=Decimal("0.01"), lot_size=Decimal("1"))})


class Ledger:
    """Per-order quantities from the events: the order's current total, what filled, what was
    cancelled or expired; and per OCO group what its legs filled."""

    def __init__(self) -> None:
        self.total: dict[str, Decimal] = {}
        self.filled: defaultdict[str, Decimal] = defaultdict(Decimal)
        self.gone: defaultdict[str, Decimal] = defaultdict(Decimal)
        self.group_of: dict[str, str] = {}
        self.group_qty: dict[str, Decimal] = {}

    def apply(self, event: Event) -> None:
        kind = event["type"]
        if kind == "accepted":
            self.total[event["order_id"]] = Decimal(event["quantity"])
            if event["group_id"]:
                self.group_of[event["order_id"]] = event["group_id"]
                self.group_qty[event["group_id"]] = Decimal(event["quantity"])
        elif kind == "trade":
            for role in ("maker", "taker"):
                order_id = event[f"{role}_order_id"]
                self.filled[order_id] += Decimal(event["quantity"])
                assert Decimal(event[f"{role}_filled_quantity"]) == self.filled[order_id]
        elif kind in ("cancelled", "expired"):
            self.gone[event["order_id"]] += Decimal(event["remaining_quantity"])
        elif kind == "replaced":
            self.total[event["order_id"]] = Decimal(event["quantity"])
            assert Decimal(event["remaining_quantity"]) == Decimal(event["quantity"]) - self.filled[event["order_id"]]


@SETTINGS
@given(journal=rich_journals())
def test_every_order_type_keeps_the_book_uncrossed_and_quantities_whole(journal: list[Command], checked: Any) -> None:
    venue = checked(make_aapl())
    ledger = Ledger()
    for command in journal:
        for event in venue.process(command):
            ledger.apply(event)
            if event["type"] == "expired":
                assert event["ts"] == command["ts"]
        depth = venue.engine.book_depth("AAPL", 1)
        if depth["bids"] and depth["asks"]:
            assert depth["bids"][0][0] < depth["asks"][0][0]
    live = venue.engine.live_orders("AAPL")
    for order_id, total in ledger.total.items():
        if order_id in live:
            # THEN a live order's open quantity is its total less what filled
            assert Decimal(live[order_id].remaining + live[order_id].hidden) == total - ledger.filled[order_id]
            assert ledger.gone[order_id] == 0 or order_id in ledger.group_of
        else:
            # AND a finished order filled or gave up exactly its quantity (an OCO leg's total
            # shrinks with its sibling's fills)
            assert ledger.filled[order_id] + ledger.gone[order_id] <= total + ledger.gone[order_id]
            assert ledger.filled[order_id] <= total
    # AND the legs of an OCO group never fill more than the group's quantity together
    by_group: defaultdict[str, Decimal] = defaultdict(Decimal)
    for order_id, group in ledger.group_of.items():
        by_group[group] += ledger.filled[order_id]
    for group, filled in by_group.items():
        assert filled <= ledger.group_qty[group], group


@SETTINGS
@given(journal=rich_journals())
def test_every_order_type_fok_is_all_or_nothing(journal: list[Command], checked: Any) -> None:
    venue = checked(make_aapl())
    for command in journal:
        before = venue.engine.snapshot()["books"]
        events = venue.process(command)
        fok = [e for e in events if e["type"] == "accepted" and e["time_in_force"] == "fok"]
        if not fok or command.get("time_in_force") != "fok" or command["type"] != "new":
            continue
        oid = fok[0]["order_id"]
        mine = [e for e in events if e["type"] == "trade" and oid in (e["maker_order_id"], e["taker_order_id"])]
        if mine:
            assert sum(Decimal(e["quantity"]) for e in mine) == Decimal(fok[0]["quantity"])
        elif command.get("order_type") == "limit" or command.get("order_type") == "market":
            own = [e["type"] for e in events if e["type"] not in ("expired", "book")]
            if own == ["accepted", "cancelled"]:
                if not [e for e in events if e["type"] == "expired"]:
                    assert venue.engine.snapshot()["books"] == before


@SETTINGS
@given(journal=rich_journals(), split=st.integers(min_value=0, max_value=40))
def test_every_order_type_replays_and_restores_identically(journal: list[Command], split: int, checked: Any) -> None:
    # GIVEN one uninterrupted run
    whole = checked(make_aapl())
    expected = [whole.process(command) for command in journal]
    # THEN a second run gives byte-identical events
    again = make_aapl()
    assert json.dumps([again.process(c) for c in journal]) == json.dumps(expected)
    # AND a run snapshotted through JSON at any point and restored continues identically
    split = min(split, len(journal))
    first = make_aapl()
    for command in journal[:split]:
        first.process(command)
    aapl = {"AAPL": Instrument(symbol="AAPL", tick_size=Decimal("0.01"), lot_size=Decimal("1"))}
    restored = MatchingEngine.restore(json.loads(json.dumps(first.snapshot())), aapl)
    assert [restored.process(c) for c in journal[split:]] == expected[split:]
    assert restored.snapshot() == whole.engine.snapshot()
