"""One normalised event for the detectors, and the decoders of the platform's two streams.

``SurvEvent`` is the only input of the detectors. It is built from:

* a record of ``order-commands`` (``from_order_command``): ``new`` and ``oco`` become ``new``,
  ``replace`` becomes ``replace``, ``cancel`` and ``mass_cancel`` become ``cancel_request``;
  ``clock``/``halt``/``resume`` are not order facts (``None``). Commands carry no engine
  sequence number: their ``seq`` is 0.
* a record of ``execution-events`` (``from_execution_event``): either the stream's
  ``{"events": [...]}`` record or one flat event (a line of the journal ``nexus replay``
  writes). ``accepted``, ``rejected``, ``cancelled``, ``expired`` map one to one, ``replaced``
  becomes ``replace``, and a ``trade`` becomes two ``fill`` events: the taker's leg
  (``aggressor=True``) then the maker's, each naming the other as counterparty. ``book``,
  ``triggered``, ``cancel_rejected``, ``trading_status`` and unknown types are skipped.

The beneficial owner (``user_id``) is not on the platform's records today: a record that carries
``user_id`` (or ``owner_user_id``) gives it, else the ``owners`` mapping (account id -> owner
user id, from the accounts table) does, else it stays ``None`` and the detectors take the
account as its own owner.

Decoding reads only the fields the detectors use; ``ts`` becomes integer epoch nanoseconds (UTC).
Malformed records raise ``ValueError`` (a ``DecodeError``); the callers count and skip them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, NamedTuple

KINDS: Final = ("new", "replace", "cancel_request", "accepted", "fill", "cancelled", "expired", "rejected")

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SIDES: Final = frozenset({"buy", "sell"})


class DecodeError(ValueError):
    """A record that is not a command or event of the platform's formats."""


class SurvEvent(NamedTuple):
    """One fact of an order's life, as the detectors see it. A named tuple: immutable, and built
    ten times faster than a frozen dataclass (a scan builds millions)."""

    kind: str
    ts: int  # epoch nanoseconds, UTC
    seq: int  # the symbol's engine sequence number; 0 for a command
    symbol: str
    order_id: str
    account_id: str
    user_id: str | None = None  # the beneficial owner
    side: str | None = None  # buy | sell
    price: Decimal | None = None  # limit price (fill: the trade price)
    quantity: Decimal | None = None  # order quantity (fill: the traded quantity; cancel: what was open)
    event_id: str = ""  # the event id or command id: the source record's identity
    # fills only
    trade_id: str | None = None
    aggressor: bool = False
    cp_order_id: str | None = None
    cp_account_id: str | None = None
    cp_user_id: str | None = None
    fill_price: Decimal | None = None
    fill_quantity: Decimal | None = None
    leaves_quantity: Decimal | None = None  # open quantity of this order after the event
    order_type: str | None = None
    reason: str | None = None

    @property
    def owner(self) -> str:
        """The beneficial owner, or the account when the owner is unknown."""
        return self.user_id or self.account_id

    @property
    def cp_owner(self) -> str | None:
        return self.cp_user_id or self.cp_account_id

    @property
    def order_key(self) -> int:
        """Position in the symbol's engine order: a trade's taker leg before its maker leg."""
        return self.seq * 2 + (1 if self.kind == "fill" and not self.aggressor else 0)


# -- field readers -------------------------------------------------------------------------

_day_cache: dict[str, int] = {}
_second_cache: dict[str, int] = {}  # "YYYY-MM-DDTHH:MM:SS" -> epoch ns, checked when first read


def ts_ns(value: Any) -> int:
    """An ISO-8601 UTC instant (the wire's ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` form, or any ISO form
    with an offset) as epoch nanoseconds."""
    if value.__class__ is str and len(value) == 27 and value[26] == "Z" and value[19] == ".":
        second = _second_cache.get(value[:19])  # the wire's form, its second seen before
        if second is not None:
            try:
                micros = int(value[20:26])
            except ValueError as exc:
                raise DecodeError(f"ts: not an instant: {value!r}") from exc
            if micros < 0:
                raise DecodeError(f"ts: not an instant: {value!r}")
            return second + micros * 1_000
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str) or len(value) > 40:
        raise DecodeError(f"ts: not an instant: {value!r}")
    if len(value) == 27 and value[26] == "Z" and value[10] == "T" and value[19] == ".":
        # the wire's own form: the date part cached, the time read by slicing
        day = _day_cache.get(value[:10])
        if day is None:
            day = _parse_iso(value[:10] + "T00:00:00Z")
            if len(_day_cache) > 10_000:
                _day_cache.clear()
            _day_cache[value[:10]] = day
        try:
            clock = (int(value[11:13]) * 3600 + int(value[14:16]) * 60 + int(value[17:19])) * 1_000_000_000
            micros = int(value[20:26])
        except ValueError as exc:
            raise DecodeError(f"ts: not an instant: {value!r}") from exc
        if value[13] != ":" or value[16] != ":" or clock >= 86_400 * 1_000_000_000 or micros < 0:
            raise DecodeError(f"ts: not an instant: {value!r}")
        if len(_second_cache) > 100_000:
            _second_cache.clear()
        _second_cache[value[:19]] = day + clock
        return day + clock + micros * 1_000
    return _parse_iso(value)


def _parse_iso(value: str) -> int:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise DecodeError(f"ts: not an instant: {value!r}") from exc
    if parsed.tzinfo is None:
        raise DecodeError(f"ts: naive instant: {value!r}")
    delta = parsed - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


_dec_cache: dict[str, Decimal] = {}


def _dec(value: Any, name: str) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, str):
        cached = _dec_cache.get(value)
        if cached is not None:
            return cached
    elif isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DecodeError(f"{name}: not a decimal: {value!r}")
    if isinstance(value, str) and len(value) > 40:
        raise DecodeError(f"{name}: too long")
    try:
        result = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except InvalidOperation as exc:
        raise DecodeError(f"{name}: not a decimal: {value!r}") from exc
    if not result.is_finite():
        raise DecodeError(f"{name}: not finite")
    if isinstance(value, str):
        if len(_dec_cache) > 100_000:
            _dec_cache.clear()
        _dec_cache[value] = result
    return result


def _str(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise DecodeError(f"{name}: missing")
    return value


def _side(record: Mapping[str, Any], name: str = "side") -> str:
    value = record.get(name)
    if value not in _SIDES:
        raise DecodeError(f"{name}: not buy/sell: {value!r}")
    return str(value)


def _owner(record: Mapping[str, Any], account: str, owners: Mapping[str, str] | None) -> str | None:
    user = record.get("user_id") or record.get("owner_user_id")
    if isinstance(user, str) and user:
        return user
    if owners is not None:
        return owners.get(account)
    return None


_OPPOSITE: Final = {"buy": "sell", "sell": "buy"}
_ZERO: Final = Decimal(0)


# -- commands ------------------------------------------------------------------------------


def from_order_command(record: Mapping[str, Any], owners: Mapping[str, str] | None = None) -> SurvEvent | None:
    """One ``order-commands`` record as an event; ``None`` for commands that are not order facts
    (clock, halt, resume, unknown types)."""
    if not isinstance(record, Mapping):
        raise DecodeError("command: not an object")
    kind = record.get("type")
    if kind not in ("new", "oco", "replace", "cancel", "mass_cancel"):
        return None
    account = _str(record, "account_id")
    ts = ts_ns(record.get("ts"))
    command_id = record.get("command_id")
    event_id = command_id if isinstance(command_id, str) else ""
    user = _owner(record, account, owners)
    if kind == "mass_cancel":
        symbol = record.get("symbol")
        return SurvEvent(
            kind="cancel_request", ts=ts, seq=0, symbol=symbol if isinstance(symbol, str) else "",
            order_id="", account_id=account, user_id=user, event_id=event_id, reason="mass_cancel",
        )
    symbol = _str(record, "symbol")
    order_id = _str(record, "order_id")
    if kind == "cancel":
        return SurvEvent(kind="cancel_request", ts=ts, seq=0, symbol=symbol, order_id=order_id,
                         account_id=account, user_id=user, event_id=event_id)
    if kind == "replace":
        return SurvEvent(kind="replace", ts=ts, seq=0, symbol=symbol, order_id=order_id, account_id=account,
                         user_id=user, price=_dec(record.get("price"), "price"),
                         quantity=_dec(record.get("quantity"), "quantity"), event_id=event_id)
    return SurvEvent(
        kind="new", ts=ts, seq=0, symbol=symbol, order_id=order_id, account_id=account, user_id=user,
        side=_side(record), price=_dec(record.get("price"), "price"),
        quantity=_dec(record.get("quantity"), "quantity"), event_id=event_id,
        order_type=str(record.get("order_type") or kind),
    )


# -- execution events ----------------------------------------------------------------------


_EVENT_TYPES: Final = frozenset({"accepted", "trade", "cancelled", "expired", "rejected", "replaced"})


def _one_event(ev: Mapping[str, Any], owners: Mapping[str, str] | None, out: list[SurvEvent]) -> None:
    get = ev.get
    kind = get("type")
    if kind.__class__ is not str or kind not in _EVENT_TYPES:
        return
    symbol = get("symbol")
    if symbol.__class__ is not str or not symbol:
        symbol = _str(ev, "symbol")  # raises (or takes a str subclass)
    seq = get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise DecodeError("seq: not a positive integer")
    ts = ts_ns(get("ts"))
    event_id = get("event_id")
    eid = event_id if isinstance(event_id, str) else f"{symbol}-{seq}"
    # SurvEvent fields, positionally (the hot path): kind, ts, seq, symbol, order_id, account_id,
    # user_id, side, price, quantity, event_id, trade_id, aggressor, cp_order_id, cp_account_id,
    # cp_user_id, fill_price, fill_quantity, leaves_quantity, order_type, reason
    if kind == "trade":
        price = _dec(get("price"), "price")
        qty = _dec(get("quantity"), "quantity")
        aggressor_side = _side(ev, "aggressor_side")
        taker_acc = _str(ev, "taker_account_id")
        maker_acc = _str(ev, "maker_account_id")
        taker_ord = _str(ev, "taker_order_id")
        maker_ord = _str(ev, "maker_order_id")
        taker_user = get("taker_user_id") or (owners.get(taker_acc) if owners is not None else None)
        maker_user = get("maker_user_id") or (owners.get(maker_acc) if owners is not None else None)
        out.append(SurvEvent(
            "fill", ts, seq, symbol, taker_ord, taker_acc, taker_user, aggressor_side, price, qty, eid, eid, True,
            maker_ord, maker_acc, maker_user, price, qty,
            _dec(get("taker_remaining_quantity"), "taker_remaining_quantity"), None, None,
        ))
        out.append(SurvEvent(
            "fill", ts, seq, symbol, maker_ord, maker_acc, maker_user, _OPPOSITE[aggressor_side], price, qty, eid,
            eid, False, taker_ord, taker_acc, taker_user, price, qty,
            _dec(get("maker_remaining_quantity"), "maker_remaining_quantity"), None, None,
        ))
        return
    account = get("account_id")
    if account.__class__ is not str or not account:
        account = _str(ev, "account_id")
    order_id = get("order_id")
    if order_id.__class__ is not str or not order_id:
        order_id = _str(ev, "order_id")
    user = get("user_id") or get("owner_user_id")
    if user.__class__ is not str or not user:
        user = owners.get(account) if owners is not None else None
    if kind == "accepted":
        side = get("side")
        if side not in _SIDES:
            side = _side(ev)  # raises
        price = _dec(get("price"), "price")
        qty = _dec(get("quantity"), "quantity")
        out.append(SurvEvent(
            "accepted", ts, seq, symbol, order_id, account, user, side, price, qty, eid, None, False, None, None,
            None, None, None, None, str(get("order_type") or "limit"), None,
        ))
    elif kind == "cancelled" or kind == "expired":
        remaining = _dec(get("remaining_quantity"), "remaining_quantity")
        out.append(SurvEvent(
            kind, ts, seq, symbol, order_id, account, user, None, None, remaining, eid, None, False, None, None, None,
            None, None, _ZERO, None, str(get("reason") or ""),
        ))
    elif kind == "replaced":
        out.append(SurvEvent(
            "replace", ts, seq, symbol, order_id, account, user, None, _dec(get("price"), "price"),
            _dec(get("quantity"), "quantity"), eid, None, False, None, None, None, None, None,
            _dec(get("remaining_quantity"), "remaining_quantity"), None, str(get("reason") or ""),
        ))
    else:  # rejected
        out.append(SurvEvent("rejected", ts, seq, symbol, order_id, account, user, None, None, None, eid, None,
                             False, None, None, None, None, None, None, None, str(get("reason") or "")))


MAX_EVENTS_PER_RECORD: Final = 100_000


def from_execution_event(record: Mapping[str, Any], owners: Mapping[str, str] | None = None) -> list[SurvEvent]:
    """An ``execution-events`` record (``{"events": [...]}``) or one flat engine event, as events
    in the record's order (a trade as its taker then its maker fill)."""
    if record.__class__ is not dict and not isinstance(record, Mapping):
        raise DecodeError("event: not an object")
    out: list[SurvEvent] = []
    events = record.get("events")
    if events is None:
        _one_event(record, owners, out)
        return out
    if not isinstance(events, list) or len(events) > MAX_EVENTS_PER_RECORD:
        raise DecodeError("events: not a list (or too long)")
    for ev in events:
        if ev.__class__ is not dict and not isinstance(ev, Mapping):
            raise DecodeError("events: an item is not an object")
        _one_event(ev, owners, out)
    return out
