"""A user's trading profile from their events. Pure: no boto3.

* order-to-trade ratio: orders the engine took (accepted) per order that traded at least once;
* cancel rate: cancelled orders per accepted order, and the timing of those cancels (from
  acceptance to cancel: median, 10th percentile, and how many within 1 s);
* self-trades: trades with the user on both sides (one account or two of theirs);
* volume by symbol: the user's traded quantity and notional (both legs of a self-trade count),
  and its share of the symbol's two-sided volume in the same history (each trade counted once
  per side, so a user on every buy and every sell has a share of 1).
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from nexus_surveillance.events import SurvEvent

_MS = 1_000_000


def _ratio(a: int, b: int) -> str | None:
    return None if b == 0 else format((Decimal(a) / Decimal(b)).quantize(Decimal("0.0001")), "f")


def _percentile(values: list[int], pct: int) -> int | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, (len(ordered) * pct) // 100)]


def trading_profile(user_id: str, accounts: Iterable[str], events: Iterable[SurvEvent]) -> dict[str, Any]:
    mine = set(accounts)
    accepted: dict[str, int] = {}
    traded: set[str] = set()
    cancels_ms: list[int] = []
    cancelled = 0
    self_trades: set[str] = set()
    symbol_qty: dict[str, Decimal] = {}
    user_qty: dict[str, Decimal] = {}
    user_notional: dict[str, Decimal] = {}
    for e in events:
        if e.kind == "fill":
            qty = e.fill_quantity or Decimal(0)
            symbol_qty[e.symbol] = symbol_qty.get(e.symbol, Decimal(0)) + qty  # both sides of each trade
            if e.account_id not in mine:
                continue
            traded.add(e.order_id)
            user_qty[e.symbol] = user_qty.get(e.symbol, Decimal(0)) + qty
            user_notional[e.symbol] = user_notional.get(e.symbol, Decimal(0)) + qty * (e.fill_price or Decimal(0))
            if e.cp_account_id in mine and e.trade_id:
                self_trades.add(e.trade_id)
        elif e.account_id in mine:
            if e.kind == "accepted":
                accepted[e.order_id] = e.ts
            elif e.kind == "cancelled":
                cancelled += 1
                if e.order_id in accepted:
                    cancels_ms.append((e.ts - accepted[e.order_id]) // _MS)
    orders = len(accepted)
    volume = [
        {
            "symbol": symbol,
            "quantity": format(qty, "f"),
            "notional": format(user_notional[symbol].quantize(Decimal("0.01")), "f"),
            "share": _ratio_dec(qty, symbol_qty.get(symbol, Decimal(0))),
        }
        for symbol, qty in sorted(user_qty.items())
    ]
    return {
        "user_id": user_id,
        "accounts": sorted(mine),
        "orders": orders,
        "orders_traded": len(traded),
        "order_to_trade_ratio": _ratio(orders, len(traded)),
        "cancelled": cancelled,
        "cancel_rate": _ratio(cancelled, orders),
        "cancel_timing_ms": {
            "median": _percentile(cancels_ms, 50),
            "p10": _percentile(cancels_ms, 10),
            "within_1s": sum(1 for ms in cancels_ms if ms <= 1000),
        },
        "self_trades": len(self_trades),
        "volume_by_symbol": volume,
    }


def _ratio_dec(a: Decimal, b: Decimal) -> str | None:
    return None if b == 0 else format((a / b).quantize(Decimal("0.0001")), "f")
