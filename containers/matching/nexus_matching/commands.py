# cython: language_level=3, annotation_typing=False
"""Command parsing: a JSON-decoded command's fields checked and turned into the engine's integers.

Each function here reads one kind of command (``new``, ``replace``, ``oco``, and the ``ts`` /
``expire_at`` instants) against a symbol's ``Market`` and returns what the matching core runs
(an ``Order``, new prices and quantity) or raises ``Invalid`` with the reason the refusal event
carries, checking in the order docs/matching-engine.md lists ("New order", "Replace", "OCO").
Nothing here changes any state: the engine decides what a command does.

Every ``process`` call goes through here, so it is compiled with the book and the engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from nexus_matching.book import KIND_NAMES, LIMIT, MARKET, PENDING, RESTING, STOP, STOP_LIMIT, STP_NAMES, Order
from nexus_matching.market import Invalid, Market, ts_micros

_SIDES: Final = ("buy", "sell")
_KINDS: Final = {"limit": LIMIT, "market": MARKET, "stop": STOP, "stop_limit": STOP_LIMIT}
_TIFS: Final = ("gtc", "ioc", "fok", "day", "gtd")
_STPS: Final = {name: i for i, name in enumerate(STP_NAMES) if name is not None}

# The ISO-8601 shapes the engine accepts for ``ts`` (what ``nexus_common.events.iso`` writes,
# and the usual variants); calendar validity is then checked by ``datetime.fromisoformat``.
TS_RE: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:\d{2})", re.ASCII
)


def read_ts(ts: str) -> int | None:
    """A command's ``ts`` in microseconds since the epoch; None when it is not an instant the
    engine accepts (the command is then dropped)."""
    if TS_RE.fullmatch(ts) is None:
        return None
    try:
        return ts_micros(ts)
    except ValueError:
        return None


def parse_new(
    m: Market, c: Mapping[str, Any], order_id: str, account_id: object, now: int, halted: bool
) -> Order:
    """The order a ``new`` command (or an OCO leg built as one) asks for, in ticks and lots."""
    if halted:
        raise Invalid("symbol_halted", f"{m.symbol} is halted")
    get = c.get
    side = get("side")
    order_type = get("order_type")
    kind = _KINDS.get(order_type) if type(order_type) is str else None
    tif = get("time_in_force", "gtc")
    if tif is None:
        tif = "gtc"
    if side not in _SIDES:
        raise Invalid("invalid_command", "side must be buy or sell")
    if kind is None:
        raise Invalid("invalid_command", "order_type must be limit, market, stop or stop_limit")
    if tif not in _TIFS:
        raise Invalid("invalid_command", "time_in_force must be gtc, ioc, fok, day or gtd")
    if type(account_id) is not str or not account_id:
        raise Invalid("invalid_command", "account_id is required")
    post_only = get("post_only")
    if post_only is None:
        post_only = False
    if type(post_only) is not bool:
        raise Invalid("invalid_command", "post_only must be true or false")
    if post_only and (kind != LIMIT or tif in ("ioc", "fok")):
        raise Invalid("invalid_command", "post_only is for gtc, day or gtd limit orders")
    stp_name = get("stp")
    stp = 0
    if stp_name is not None:
        if type(stp_name) is not str or stp_name not in _STPS:
            raise Invalid("invalid_command", "stp must be " + ", ".join(_STPS))
        stp = _STPS[stp_name]
    raw_expire = get("expire_at")
    if raw_expire is not None and tif != "gtd":
        raise Invalid("invalid_command", "expire_at is for gtd orders")
    raw_display = get("display_quantity")
    if raw_display is not None and kind not in (LIMIT, STOP_LIMIT):
        raise Invalid("invalid_command", "display_quantity is for limit and stop_limit orders")
    has_limit = kind == LIMIT or kind == STOP_LIMIT
    raw_price = get("price")
    if has_limit:
        if raw_price is None:
            raise Invalid("missing_price", f"a {KIND_NAMES[kind]} order needs a price")
        price = m.price_ticks(raw_price)
    else:
        if raw_price is not None:
            raise Invalid("unexpected_price", f"a {KIND_NAMES[kind]} order takes no price")
        price = 0
    raw_stop = get("stop_price")
    stop_price = 0
    if kind == STOP or kind == STOP_LIMIT:
        if raw_stop is None:
            raise Invalid("missing_stop_price", f"a {KIND_NAMES[kind]} order needs a stop_price")
        stop_price = m.price_ticks(raw_stop, "stop_price")
    elif raw_stop is not None:
        raise Invalid("unexpected_stop_price", f"a {KIND_NAMES[kind]} order takes no stop_price")
    lots = m.quantity_lots(get("quantity"))
    peak = 0
    if raw_display is not None:
        try:
            peak = m.quantity_lots(raw_display, "display_quantity")
        except Invalid as exc:
            raise Invalid("invalid_display_quantity", exc.message) from None
        if peak > lots:
            raise Invalid("invalid_display_quantity", "display_quantity exceeds quantity")
        if peak == lots:
            peak = 0
    expire_at = 0
    if tif == "gtd":
        expire_at = parse_expire_at(raw_expire, now)
    elif tif == "day":
        expire_at = m.session_close_after(now)
    is_buy = side == "buy"
    if has_limit:
        m.check_collar(is_buy, price)
    if post_only and m.book.would_take(is_buy, price):
        raise Invalid("post_only_would_take", "a post-only order would take liquidity")
    return Order(
        order_id, account_id, is_buy, price, lots, tif,
        kind=kind, stop_price=stop_price, stp=stp, peak=peak, post_only=post_only,
        expire_at=expire_at,
    )


def parse_expire_at(raw: object, now: int) -> int:
    """A GTD order's ``expire_at`` in microseconds, after the command's ``now``."""
    if raw is None:
        raise Invalid("missing_expire_at", "a gtd order needs expire_at")
    if type(raw) is not str or TS_RE.fullmatch(raw) is None:
        raise Invalid("invalid_expire_at", "expire_at must be an ISO-8601 instant with an offset")
    try:
        expire_at = ts_micros(raw)
    except ValueError:
        raise Invalid("invalid_expire_at", "expire_at is not a valid instant") from None
    if expire_at <= now:
        raise Invalid("already_expired", "expire_at is not after the command's ts")
    return expire_at


def parse_replace(m: Market, c: Mapping[str, Any], order: Order, halted: bool) -> tuple[int, int, int]:
    """A ``replace`` of a live order of the account: its new ``(price, stop_price, quantity)``,
    the order's own where the command leaves one out."""
    if halted:
        raise Invalid("symbol_halted", f"{m.symbol} is halted")
    if order.group is not None:
        raise Invalid("oco_leg", "an OCO leg cannot be replaced; cancel the group")
    raw_price, raw_stop, raw_qty = c.get("price"), c.get("stop_price"), c.get("quantity")
    if raw_price is None and raw_stop is None and raw_qty is None:
        raise Invalid("invalid_command", "replace needs price, stop_price or quantity")
    price = order.price
    if raw_price is not None:
        if order.kind not in (LIMIT, STOP_LIMIT):
            raise Invalid("unexpected_price", "the order has no limit price")
        price = m.price_ticks(raw_price)
    stop_price = order.stop_price
    if raw_stop is not None:
        if order.state != PENDING:
            raise Invalid("unexpected_stop_price", "the order has no stop price to change")
        stop_price = m.price_ticks(raw_stop, "stop_price")
    quantity = order.quantity
    if raw_qty is not None:
        quantity = m.quantity_lots(raw_qty)
        if quantity <= order.filled:
            raise Invalid("quantity_below_filled", "quantity must exceed the filled quantity")
    if price != order.price and order.kind in (LIMIT, STOP_LIMIT):
        m.check_collar(order.is_buy, price)
    if order.post_only and order.state == RESTING and m.book.would_take(order.is_buy, price):
        raise Invalid("post_only_would_take", "a post-only order would take liquidity")
    return price, stop_price, quantity


def parse_oco(
    m: Market, c: Mapping[str, Any], group_id: str, account_id: object, now: int, halted: bool
) -> tuple[Order, Order]:
    """The two legs of an ``oco`` command: the take-profit limit ``{group_id}.tp`` and the
    stop-loss ``{group_id}.sl`` (stop, or stop-limit at ``stop_limit_price``)."""
    leg = dict(c)
    leg.pop("stop_limit_price", None)
    leg.update(order_type="limit", stop_price=None)
    tp = parse_new(m, leg, f"{group_id}.tp", account_id, now, halted)
    if tp.tif not in ("gtc", "day", "gtd"):
        raise Invalid("invalid_command", "an OCO group's time_in_force is gtc, day or gtd")
    stop_limit = c.get("stop_limit_price")
    leg = dict(c)
    leg.pop("stop_limit_price", None)
    leg.update(
        order_type="stop" if stop_limit is None else "stop_limit",
        price=stop_limit,
        stop_price=c.get("stop_price"),
    )
    sl = parse_new(m, leg, f"{group_id}.sl", account_id, now, halted)
    if (sl.stop_price >= tp.price) if not tp.is_buy else (sl.stop_price <= tp.price):
        raise Invalid("invalid_oco", "the stop must be below the take-profit price (sell) or above it (buy)")
    return tp, sl


# ``routed_fills``: the decimals routing computed, checked for shape only (routing owns the
# amounts; the engine puts them in the symbol's sequence as they are).
DECIMAL_RE: Final = re.compile(r"-?\d{1,18}(?:\.\d{1,12})?", re.ASCII)
MAX_ROUTED_FILLS: Final = 500
_FILL_DECIMALS: Final = ("price", "quantity", "fee", "filled_quantity", "filled_notional", "remaining_quantity")
_FILL_TEXTS: Final = ("child_id", "venue", "report_id")


def _text(value: object, size: int = 64) -> bool:
    return type(value) is str and 0 < len(value) <= size


def _decimal(value: object, signed: bool = False) -> bool:
    return (
        type(value) is str and DECIMAL_RE.fullmatch(value) is not None and (signed or not value.startswith("-"))
    )


def parse_routed_fills(c: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The fills of a ``routed_fills`` command, each with exactly the fields a ``venue_fill``
    event carries; None when the command is malformed (it is then dropped): among others a
    ``working`` that is not a bool, or a ``rest_venue`` (text, at most 64) / ``rest_mic`` (at most
    16) that is not text or comes without what a rest on a venue needs (``working``, a gtc / day
    ``rest_price``; ``rest_mic`` with a ``rest_venue``)."""
    get = c.get
    if not (_text(get("account_id")) and get("side") in _SIDES and _decimal(get("quantity"))
            and _text(get("end_reason"))):
        return None
    for name in ("internal_price", "rest_price"):
        price = get(name)
        if price is not None and not _decimal(price):
            return None
    tif = get("time_in_force", "ioc")
    if tif not in ("ioc", "gtc", "day"):
        return None
    # Working on an external venue: ``rest_venue`` (and ``rest_mic``) only on the route's first
    # command, which says where the remainder rests and at what price (a gtc / day order's).
    working = get("working")
    if working is None:
        working = False
    if type(working) is not bool:
        return None
    rest_venue = get("rest_venue")
    rest_mic = get("rest_mic")
    if rest_venue is not None and not (_text(rest_venue) and working and tif != "ioc"
                                       and get("rest_price") is not None):
        return None
    if rest_mic is not None and not (_text(rest_mic, 16) and rest_venue is not None):
        return None
    fills = get("fills")
    if type(fills) is not list or len(fills) > MAX_ROUTED_FILLS:
        return None
    out: list[dict[str, Any]] = []
    for fill in fills:
        if type(fill) is not dict:
            return None
        mic = fill.get("mic")
        if mic is not None and not _text(mic, 16):
            return None
        if fill.get("liquidity") not in ("maker", "taker"):
            return None
        for name in _FILL_TEXTS:
            if not _text(fill.get(name), 96):
                return None
        for name in _FILL_DECIMALS:
            if not _decimal(fill.get(name), signed=name == "fee"):
                return None
        out.append({"child_id": fill["child_id"], "venue": fill["venue"], "mic": mic, "price": fill["price"],
                    "quantity": fill["quantity"], "liquidity": fill["liquidity"], "fee": fill["fee"],
                    "report_id": fill["report_id"], "filled_quantity": fill["filled_quantity"],
                    "filled_notional": fill["filled_notional"], "remaining_quantity": fill["remaining_quantity"]})
    return out


def parse_routed_rest(
    m: Market, c: Mapping[str, Any], fills: list[dict[str, Any]], now: int, halted: bool
) -> tuple[Order, int]:
    """The internal book's part of a routed order: a limit order under the parent's id for the
    whole order, its filled quantity and notional set to the external fills' so far, so that its
    trades carry the parent's totals; it takes at ``internal_price`` (else at ``rest_price``).
    Returns it and the price in ticks its remainder rests at (0: none, it is cancelled as an
    IOC's). ``Invalid`` when it cannot run (halted, off the grid, out of the collar, nothing left)."""
    tif = c.get("time_in_force", "ioc")
    rest = c.get("rest_price") if tif != "ioc" else None
    take = c.get("internal_price")
    order = parse_new(m, {"side": c.get("side"), "order_type": "limit", "price": take if take is not None else rest,
                          "quantity": c.get("quantity"), "time_in_force": tif if rest is not None else "ioc"},
                      c["order_id"], c.get("account_id"), now, halted)
    rest_ticks = 0 if rest is None else m.price_ticks(rest, "rest_price")
    filled = 0
    notional = 0
    for fill in fills:
        lots = m.quantity_lots(fill["quantity"])
        filled += lots
        notional += m.price_ticks(fill["price"]) * lots
    if filled >= order.quantity:
        raise Invalid("nothing_left", "the external fills took the whole order")
    order.filled = filled
    order.notional = notional
    order.remaining = order.quantity - filled
    return order, rest_ticks


__all__ = [
    "TS_RE", "parse_expire_at", "parse_new", "parse_oco", "parse_replace", "parse_routed_fills", "parse_routed_rest",
    "read_ts",
]
