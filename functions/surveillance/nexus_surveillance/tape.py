"""Writes order flow in the platform's wire formats: the ``order-commands`` records a client
sends and the flat engine events ``nexus replay`` writes (one per journal line), with each
symbol's sequence numbers. The synthetic day and the tests script their episodes with it; it
does no matching of its own (the script says who trades with whom, at what price)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

Record = dict[str, Any]
Sink = Callable[[Record], None]


def iso_ns(ns: int) -> str:
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{rest // 1000:06d}Z"


def _s(value: Decimal | int) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


class Tape:
    """Commands and engine events of several symbols, each symbol's ``seq`` counting from 1."""

    def __init__(self, on_command: Sink | None = None, on_event: Sink | None = None) -> None:
        self.commands: list[Record] = []
        self.events: list[Record] = []
        self._on_command = on_command or self.commands.append
        self._on_event = on_event or self.events.append
        self._seq: dict[str, int] = {}
        self._ncmd = 0

    def _event(self, symbol: str, type_: str, ts: int, correlation: str, **fields: Any) -> Record:
        seq = self._seq.get(symbol, 0) + 1
        self._seq[symbol] = seq
        record: Record = {
            "event_id": f"{symbol}-{seq}", "type": type_, "version": 1, "ts": iso_ns(ts),
            "correlation_id": correlation, "symbol": symbol, "seq": seq, "epoch": 0,
        }
        record.update(fields)
        self._on_event(record)
        return record

    def new(
        self, symbol: str, order_id: str, account: str, side: str, price: Decimal | None, quantity: Decimal,
        ts: int, *, order_type: str = "limit", tif: str = "gtc", user: str | None = None,
    ) -> Record:
        """A new order's command and its ``accepted`` event."""
        command: Record = {
            "type": "new", "command_id": f"{order_id}:new", "order_id": order_id, "account_id": account,
            "symbol": symbol, "side": side, "order_type": order_type, "quantity": _s(quantity),
            "time_in_force": tif, "ts": iso_ns(ts),
        }
        if price is not None:
            command["price"] = _s(price)
        if user is not None:
            command["user_id"] = user
        self._on_command(command)
        fields: Record = {"order_id": order_id, "account_id": account, "side": side, "order_type": order_type,
                          "quantity": _s(quantity), "time_in_force": tif}
        if price is not None:
            fields["price"] = _s(price)
        return self._event(symbol, "accepted", ts, f"{order_id}:new", **fields)

    def cancel(self, symbol: str, order_id: str, account: str, remaining: Decimal, ts: int) -> Record:
        """A cancel request and its ``cancelled`` event."""
        self._ncmd += 1
        self._on_command({"type": "cancel", "command_id": f"{order_id}:cancel:{self._ncmd}", "order_id": order_id,
                          "account_id": account, "symbol": symbol, "ts": iso_ns(ts)})
        return self._event(symbol, "cancelled", ts, f"{order_id}:cancel", order_id=order_id, account_id=account,
                           remaining_quantity=_s(remaining), reason="user")

    def engine_cancel(self, symbol: str, order_id: str, account: str, remaining: Decimal, ts: int,
                      reason: str = "ioc") -> Record:
        """A ``cancelled`` event the engine emits by itself (IOC rest, market with no liquidity)."""
        return self._event(symbol, "cancelled", ts, f"{order_id}:new", order_id=order_id, account_id=account,
                           remaining_quantity=_s(remaining), reason=reason)

    def expire(self, symbol: str, order_id: str, account: str, remaining: Decimal, ts: int) -> Record:
        return self._event(symbol, "expired", ts, "clock", order_id=order_id, account_id=account,
                           remaining_quantity=_s(remaining), reason="day")

    def trade(
        self, symbol: str, ts: int, price: Decimal, quantity: Decimal, aggressor_side: str,
        taker: tuple[str, str], maker: tuple[str, str],
        taker_remaining: Decimal = Decimal(0), maker_remaining: Decimal = Decimal(0),
    ) -> Record:
        """A ``trade`` event: ``taker`` and ``maker`` are (order id, account id)."""
        notional = _s(price * quantity)
        return self._event(
            symbol, "trade", ts, f"{taker[0]}:new", price=_s(price), quantity=_s(quantity),
            aggressor_side=aggressor_side, maker_order_id=maker[0], maker_account_id=maker[1],
            taker_order_id=taker[0], taker_account_id=taker[1],
            maker_filled_quantity=_s(quantity), maker_filled_notional=notional,
            maker_remaining_quantity=_s(maker_remaining), taker_filled_quantity=_s(quantity),
            taker_filled_notional=notional, taker_remaining_quantity=_s(taker_remaining),
        )
