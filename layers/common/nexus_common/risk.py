"""Pre-trade risk: the limits, the reservation arithmetic and the account item's risk state.

Shared by the orders API (which reserves) and the risk consumer (which releases): a release must
give back exactly what was reserved, so both sides use the functions below.

The account item (``AccountsTable``) carries the risk state of its account:

* ``cash``: trade-date cash in USD (the risk consumer moves it on every fill, fees included);
  ``available_cash`` = ``cash`` minus the cash reserved by open buy orders; ``opening_cash`` =
  ``cash`` before the first risk write (set once with ``if_not_exists``), which reconciliation
  adds to the ledger's cash projection. An account created before any risk write has only
  ``cash``: every write reads ``if_not_exists(available_cash, cash)``.
* per symbol ``S`` (top-level attributes, so that no map must exist first):
  ``pos#S`` the position (signed, trade date), ``sellable#S`` = position minus the quantity of
  open sell orders, ``buying#S`` = position plus the quantity of open buy orders, and ``seq#S``
  the last engine sequence of ``S`` applied to the item (the risk consumer's watermark).
* ``status`` (``active`` trades; anything else stops new orders) and ``trading_enabled`` (absent
  or true trades; false is the account's kill switch).

Reservation (one conditional ``UpdateItem`` per order, in the orders API):

* buy: ``available_cash -= reserve_amount(quantity, rate)`` under ``available_cash >= amount``,
  and ``buying#S += quantity`` under ``buying#S <= position_limit - quantity``; ``rate`` =
  limit price (market: the protection price) x (1 + the highest fee rate), so fees are covered.
* sell: ``sellable#S -= quantity`` under ``sellable#S >= quantity - min(short_limit,
  position_limit)``: holdings first, then short sales up to the short limit.

Release (the risk consumer, from execution events): on a fill of ``q`` with ``r`` left, a buy gives
back ``reserve_amount(q + r) - reserve_amount(r)`` (these telescope to exactly the reserved
amount); a cancel, expiry or reject gives back ``reserve_amount(r)``; sells give back shares one
for one.

The other order types and instructions:

* stop / stop-limit: reserved at entry like a limit order, held while the stop waits (parked),
  released on trigger-and-fill, cancel or expiry. A stop (market) buy reserves at its protection
  price ``stop_price x (1 + market_protection)`` and goes to the engine as a stop-limit at that
  price floored to the tick, so it can never spend more than was reserved.
* iceberg: reserved for the full quantity (shown and hidden), released as above.
* OCO (``oco_group_id``: ``oco-<uuid>``; legs ``<group>.tp`` and ``<group>.sl``): one reservation
  for the group, the LARGER of the legs' exposures (a buy: the quantity at the highest leg
  rate; a sell: the quantity once), stored on both legs' order items. A fill of either leg
  releases like a fill of one order (the engine keeps the legs' open quantities equal); the
  group's open quantity is released once when the group ends by cancel, expiry or self-trade
  prevention (which ends both legs); a self-trade ``decrement`` of a leg releases its cut once; a
  leg cut or cancelled by its sibling's fill or decrement (reason ``oco``) releases nothing.
* replace (``replace_command_id``): the orders API reserves the difference at once with one
  conditional write (``replace_terms``) and stores the terms as two facts items of the orders
  table: ``<order>~r<n>`` (``quantity`` = the change of the total, ``reserve_rate`` = the cash
  settled on the engine's ``replaced`` event) and, for buys, ``<order>~p<n>`` (``reserve_rate``
  = the price top-up held until the order ends). On ``replaced`` the risk consumer re-bases the
  order's reservation to its new open quantity (a decrease is released there); on
  ``replace_rejected`` it gives the difference back. A buy's rate per share stays the one it was
  entered at; a price increase is covered by the top-up, released when the order ends.

The set of reservations held (``reservations``, a string set on the account item): an order's
reservation write also checks that the set holds fewer than ``max_open_orders`` ids
(``max_open_orders_exceeded``), so the item stays within DynamoDB's 400 KB whatever the account
leaves open (``MAX_OPEN_ORDERS_CEILING``); a replace's up-front write does not (it ends with the
replace). Every reservation write ADDs its id (``reservation_id``: the order id of a single order, the group id of
an OCO group, ``<order>~r<n>.<digest>`` for what replace ``n`` reserves up front,
``replace_reservation_id``) under ``NOT
contains(reservations, id)`` besides its limits, so a write applied twice (an SDK retry of a write
whose answer was lost) holds once: a refused write whose item already holds the id is the
reservation in place, not a refusal. The orders API's compensation DELETEs the id under
``contains(reservations, id)``, so a release applied twice gives back once and a release of a
write that never applied gives back nothing; an answer-less reservation write (timeout, connection
error) is therefore released by id and answered 503. The risk consumer DELETEs the ids of the
orders and groups an event ends (and of a replace on ``replaced`` / ``replace_rejected``) in its
one coalesced write per account (a DELETE of an absent member changes nothing). An entry closed
by the fence (the engine's ``rejected`` with reason ``entry_incomplete``: the order was stored
``pending_new``, and its reservation may or may not have been written before the entry stopped)
is the exception: the risk consumer gives its reservation back only while the account item holds
its id, with the same conditional write as the orders API's compensation
(``release_held_update``), so a reservation never written is not given back and a redelivery
gives back nothing more. Reconciliation reports an id held with no open order behind it as a
leaked reservation. Account items and orders from before the set are tolerated: a missing set is
empty, the consumer's DELETE is unconditional, and reconciliation does not ask an open order for
its id.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_UP, Decimal
from typing import Any, Final

from nexus_common.errors import NexusError
from nexus_common.money import quantize_price, quantize_usd

RESERVE_ROUNDING: Final = ROUND_UP  # a reservation is rounded up to the cent: never too small
ZERO: Final = Decimal(0)


class RiskRefused(NexusError):
    """An order refused by a pre-trade risk rule: 422 with the rule's reason code."""

    status = 422
    default_code = "risk_refused"


@dataclass(frozen=True)
class RiskLimits:
    """Pre-trade limits (the same for every account; given by the template)."""

    max_order_quantity: Decimal
    max_order_value: Decimal  # USD
    position_limit: Decimal  # |position + open orders of one side| per symbol, in shares
    short_limit: Decimal  # shares an account may sell beyond its holdings, per symbol
    price_collar: Decimal  # fraction: limit prices within reference x (1 +/- collar)
    market_protection: Decimal  # fraction: a market buy reserves at reference x (1 + this)
    fee_buffer: Decimal  # fraction reserved on top of the notional for fees (the highest fee rate)
    max_open_orders: int  # reservations an account holds at once: its open orders (and OCO groups)


# The most ``max_open_orders`` may be: the ids of the reservations held are one string set on the
# account item, and an item holds at most 400 KB. An order's id is 36 characters; a replace holds
# a second id of 52 while it waits for the engine. 4,000 orders, each mid-replace, make 352 KB.
MAX_OPEN_ORDERS_CEILING: Final = 4000


RESERVATIONS: Final = "reservations"  # the account item's string set of the reservation ids it holds


def attr(kind: str, symbol: str) -> str:
    """Name of a per-symbol attribute of the account item: ``pos#AAPL``, ``seq#AAPL``..."""
    return f"{kind}#{symbol}"


def reserve_rate(price: Decimal, fee_buffer: Decimal) -> Decimal:
    """Cash reserved per share of a buy (exact; rounded only in ``reserve_amount``)."""
    return price * (1 + fee_buffer)


def reserve_amount(quantity: Decimal, rate: Decimal) -> Decimal:
    """USD reserved for ``quantity`` shares at ``rate``: to the cent, ROUND_UP."""
    if quantity <= 0:
        return Decimal("0.00")
    return quantize_usd(quantity * rate, RESERVE_ROUNDING)


def fill_release(filled: Decimal, remaining_after: Decimal, rate: Decimal) -> Decimal:
    """Cash a buy's reservation gives back when ``filled`` shares fill and ``remaining_after``
    stay open."""
    return reserve_amount(filled + remaining_after, rate) - reserve_amount(remaining_after, rate)


def protection_price(reference: Decimal, band: Decimal) -> Decimal:
    """Price a market buy reserves at: reference x (1 + band), 4 dp, ROUND_CEILING."""
    return quantize_price(reference * (1 + band), ROUND_CEILING)


def collar(reference: Decimal, band: Decimal) -> tuple[Decimal, Decimal]:
    """Lowest and highest limit price accepted around ``reference`` (4 dp, inward rounding)."""
    return (
        quantize_price(reference * (1 - band), ROUND_CEILING),
        quantize_price(reference * (1 + band), ROUND_FLOOR),
    )


@dataclass(frozen=True)
class OrderRisk:
    """What the rules need to know of an order."""

    symbol: str
    side: str  # buy | sell
    order_type: str  # limit | market | stop | stop_limit
    quantity: Decimal
    price: Decimal | None
    stop_price: Decimal | None = None


def check_order(
    order: OrderRisk,
    limits: RiskLimits,
    last_trade: Decimal | None,
    best_ask: Decimal | None,
) -> Decimal | None:
    """The stateless rules (fat finger, collar, reference price). Returns the price a buy
    reserves at (its limit price, or a market buy's protection price); None for a sell.

    Raises ``RiskRefused`` with the reason code of the first rule broken."""
    if order.quantity > limits.max_order_quantity:
        raise RiskRefused(
            "max_quantity_exceeded",
            f"quantity above the maximum of {limits.max_order_quantity} per order",
            "quantity",
        )
    if order.quantity > limits.position_limit:
        raise RiskRefused(
            "position_limit_exceeded",
            f"quantity above the position limit of {limits.position_limit}",
            "quantity",
        )
    if order.price is not None and last_trade is not None:
        _check_collar(order.price, last_trade, limits, "price")
    price = order.price
    if order.order_type == "stop" and order.stop_price is not None:
        # a stop buy spends at most its protection price (it is sent as a stop-limit there)
        price = protection_price(order.stop_price, limits.market_protection) if order.side == "buy" else None
        if price is not None and last_trade is not None:
            _check_collar(price, last_trade, limits, "stop_price")
        if order.side == "sell" and order.quantity * order.stop_price > limits.max_order_value:
            raise RiskRefused(
                "max_order_value_exceeded",
                f"order value above the maximum of {limits.max_order_value} USD",
                "quantity",
            )
    elif price is None:
        reference = best_ask if order.side == "buy" and best_ask is not None else last_trade
        if reference is None:
            if order.side == "buy":
                raise RiskRefused(
                    "no_reference_price",
                    "a market buy needs a reference price (best ask or last trade); send a limit order",
                    "type",
                )
        else:
            price = protection_price(reference, limits.market_protection) if order.side == "buy" else reference
    if price is not None and order.quantity * price > limits.max_order_value:
        raise RiskRefused(
            "max_order_value_exceeded",
            f"order value above the maximum of {limits.max_order_value} USD",
            "quantity",
        )
    return price if order.side == "buy" else None


def _check_collar(price: Decimal, last_trade: Decimal, limits: RiskLimits, field: str) -> None:
    low, high = collar(last_trade, limits.price_collar)
    if not low <= price <= high:
        raise RiskRefused(
            "price_outside_collar",
            f"price outside the collar {low} - {high} around the last trade {last_trade}",
            field,
        )


# -- OCO groups and replaces: the names both sides agree on ---------------------------------

OCO_PREFIX: Final = "oco-"
LEG_SUFFIXES: Final = (".tp", ".sl")


def oco_leg_ids(group_id: str) -> tuple[str, str]:
    """The engine's names of a group's legs: take-profit, stop-loss."""
    return f"{group_id}.tp", f"{group_id}.sl"


def group_of_leg(order_id: str) -> str | None:
    """The OCO group of a leg id (``oco-<uuid>.tp``), None for any other order id."""
    if order_id.startswith(OCO_PREFIX) and order_id.endswith(LEG_SUFFIXES):
        return order_id[:-3]
    return None


def is_group_id(order_id: str) -> bool:
    return order_id.startswith(OCO_PREFIX) and not order_id.endswith(LEG_SUFFIXES)


def replace_command_id(order_id: str, number: int) -> str:
    return f"{order_id}:replace:{number}"


def replace_number(order_id: str, command_id: str) -> int | None:
    """The replace number of a replace command id of ``order_id`` (None for anything else)."""
    prefix = f"{order_id}:replace:"
    if not command_id.startswith(prefix) or not command_id[len(prefix):].isdigit():
        return None
    return int(command_id[len(prefix):])


def replace_record_id(order_id: str, number: int) -> str:
    return f"{order_id}~r{number}"


def topup_record_id(order_id: str, number: int) -> str:
    return f"{order_id}~p{number}"


def reservation_id(order_id: str) -> str:
    """The id of the reservation an order holds: its group's for an OCO leg, else its own."""
    return group_of_leg(order_id) or order_id


def replace_reservation_id(
    order_id: str, number: int, side: str | None = None, quantity: Decimal = ZERO, cash: Decimal = ZERO
) -> str:
    """The id of what replace ``number`` of an order reserves up front: ``<order>~r<n>.<digest>``,
    the digest of what it reserves (side, shares, cash), so an attempt of the same number that
    needs other amounts (a retry after a stop between the reservation and the replace's begin)
    reserves in full under an id of its own, never counting on what the stopped attempt left (the
    leftover stays held, an over-reservation reconciliation reports). The terms item (``<order>~r<n>``) stores the
    id it used (``reservation_id``); without ``side``, the id replaces had before they carried a
    digest, which is their terms item's key (``held_replace_id``)."""
    if side is None:
        return replace_record_id(order_id, number)
    amounts = f"{side}|{(quantity + 0).normalize()}|{(cash + 0).normalize()}"  # (+ 0: -0 is 0)
    digest = hashlib.sha256(amounts.encode()).hexdigest()[:12]
    return f"{replace_record_id(order_id, number)}.{digest}"


def replace_reserved_up_front(quantity_change: Decimal, settle_cash: Decimal, topup: Decimal) -> bool:
    """Whether a replace's terms wrote a reservation of their own before the replace began: shares
    (the quantity went up) or cash (``settle_cash + topup``, a buy's ``reserve_cash``; the settled
    cash alone is negative when a price increase comes with a smaller quantity, the top-up alone is
    positive whenever the price went up). The one rule for the orders API that writes it, the risk
    consumer that ends it and reconciliation that expects it."""
    return quantity_change > 0 or settle_cash + topup > 0


def held_replace_id(order_id: str, number: int, terms: Mapping[str, Any] | None) -> str:
    """The reservation id replace ``number`` holds, from its terms item (the id stored there;
    a terms item written before ids carried a digest holds its own key)."""
    stored = (terms or {}).get("reservation_id")
    return str(stored) if stored else replace_reservation_id(order_id, number)


def release_held_update(
    reservation_id: str, side: str, symbol: str, quantity: Decimal, amount: Decimal
) -> dict[str, Any]:
    """The ``UpdateItem`` arguments (all but ``Key``, the account id) that give a reservation back
    by id, only while the account item holds the id (see the module doc): a buy gives back
    ``amount`` USD of ``available_cash`` and ``quantity`` of ``buying#S``, a sell ``quantity`` of
    ``sellable#S`` (``amount`` is not used); the id is DELETEd from ``reservations``. The condition
    fails when the item does not hold the id (never written, or already given back) or does not
    exist: then nothing changes. Used by the orders API's compensation and the risk consumer."""
    names = {"#res": RESERVATIONS}
    values: dict[str, Any] = {":rid": reservation_id, ":rids": {reservation_id}}
    if side == "buy":
        update = "SET available_cash = available_cash + :amt, #exp = #exp - :q"
        names["#exp"] = attr("buying", symbol)
        values.update({":amt": amount, ":q": quantity})
    else:
        update = "SET #sell = #sell + :q"
        names["#sell"] = attr("sellable", symbol)
        values[":q"] = quantity
    return {
        "UpdateExpression": update + " DELETE #res :rids",
        "ConditionExpression": "attribute_exists(account_id) AND contains(#res, :rid)",
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }


@dataclass(frozen=True)
class ReplaceTerms:
    """What a replace reserves now and what the risk consumer settles later (see module doc).

    ``quantity_change``: new total minus old total (signed); ``reserve_quantity``: shares reserved
    now (the increase, else 0); ``reserve_cash``: USD reserved now (buys); ``topup``: the part of
    ``reserve_cash`` held until the order ends (a price increase); ``settle_cash`` =
    ``reserve_cash - topup``, settled on the engine's ``replaced`` (or given back on
    ``replace_rejected``); ``topup_total`` and ``cover_rate``: the order's new totals."""

    quantity_change: Decimal
    reserve_quantity: Decimal
    reserve_cash: Decimal
    topup: Decimal
    settle_cash: Decimal
    topup_total: Decimal
    cover_rate: Decimal | None


def replace_terms(
    side: str,
    open_quantity: Decimal,
    quantity_change: Decimal,
    entry_rate: Decimal | None,
    cover_rate: Decimal | None,
    new_rate: Decimal | None,
    topup_total: Decimal,
) -> ReplaceTerms:
    """The reservation change of a replace of an order with ``open_quantity`` open (as the orders
    table knows it) whose total changes by ``quantity_change``.

    Buys: the order's base reservation is ``reserve_amount(open, entry_rate)`` (released by fills
    at the entry rate); the price cover is ``reserve_amount(open, cover) - reserve_amount(open,
    entry_rate)`` with ``cover`` the highest rate the order has had; what is missing now is
    reserved now, the base part settled on ``replaced``, the cover part kept to the end."""
    reserve_quantity = max(quantity_change, ZERO)
    if side != "buy" or entry_rate is None:
        return ReplaceTerms(quantity_change, reserve_quantity, ZERO, ZERO, ZERO, topup_total, cover_rate)
    after = open_quantity + quantity_change
    cover = max(cover_rate or entry_rate, new_rate or entry_rate)
    base_change = reserve_amount(after, entry_rate) - reserve_amount(open_quantity, entry_rate)
    needed_cover = reserve_amount(after, cover) - reserve_amount(after, entry_rate)
    topup = max(needed_cover - topup_total, ZERO)
    reserve_cash = max(base_change + topup, ZERO)
    return ReplaceTerms(
        quantity_change=quantity_change,
        reserve_quantity=reserve_quantity,
        reserve_cash=reserve_cash,
        topup=topup,
        settle_cash=reserve_cash - topup,
        topup_total=topup_total + topup,
        cover_rate=cover,
    )


def oco_reserve_price(leg_prices: list[Decimal]) -> Decimal:
    """An OCO buy group reserves at the highest price either leg can spend: the larger of the
    legs' exposures (the legs share one quantity and never fill more than it together)."""
    return max(leg_prices)


@dataclass
class ExpectedReservations:
    """What the open orders of the orders table should hold on the account items."""

    cash: dict[str, Decimal]  # account -> USD
    quantity: dict[tuple[str, str, str], Decimal]  # (account, symbol, side) -> shares


def expected_reservations(
    order_items: Iterable[Mapping[str, Any]], open_statuses: Iterable[str]
) -> ExpectedReservations:
    """The reservations the open reserved orders hold (reconciliation's side of the account
    items), from the orders table's items as stored: an order's open quantity at its entry rate
    plus its price top-ups (``price_topup``); an OCO group once, for the larger open quantity of
    its open legs. Items without ``account_id`` (replace terms) are not orders."""
    statuses = frozenset(open_statuses)
    cash: dict[str, Decimal] = {}
    quantity: dict[tuple[str, str, str], Decimal] = {}
    groups: dict[str, tuple[Mapping[str, Any], Decimal]] = {}
    singles: list[tuple[Mapping[str, Any], Decimal]] = []
    for item in order_items:
        if "account_id" not in item or item.get("status") not in statuses or not item.get("reserved"):
            continue
        remaining = Decimal(str(item.get("remaining_quantity", 0)))
        group = group_of_leg(str(item["order_id"]))
        if group is None:
            singles.append((item, remaining))
        elif group not in groups or groups[group][1] < remaining:
            groups[group] = (item, remaining)
    for item, remaining in [*singles, *groups.values()]:
        account = str(item["account_id"])
        key = (account, str(item["symbol"]), str(item["side"]))
        quantity[key] = quantity.get(key, ZERO) + remaining
        rate = item.get("reserve_rate")
        if item["side"] == "buy" and rate is not None:
            held = reserve_amount(remaining, Decimal(str(rate))) + Decimal(str(item.get("price_topup", 0)))
            cash[account] = cash.get(account, ZERO) + held
    return ExpectedReservations(cash, quantity)


def held_reservation_ids(
    order_items: Iterable[Mapping[str, Any]], open_statuses: Iterable[str]
) -> dict[str, set[str]]:
    """Per account, the reservation ids the open reserved orders hold (see the module doc): an
    open reserved order's id (an OCO leg's group id) and, while replace ``n`` of a reserved order
    waits for the engine, the id its terms item names (``held_replace_id``) when its terms
    reserved something up front (``replace_reserved_up_front``)."""
    statuses = frozenset(open_statuses)
    items = {str(item["order_id"]): item for item in order_items if "order_id" in item}
    held: dict[str, set[str]] = {}
    for order_id, item in items.items():
        if "account_id" not in item or item.get("status") not in statuses or not item.get("reserved"):
            continue
        ids = held.setdefault(str(item["account_id"]), set())
        ids.add(reservation_id(order_id))
        number = int(item.get("replace_count", 0))
        if item.get("replace_pending") and number > 0:
            terms = items.get(replace_record_id(order_id, number), {})
            topup = items.get(topup_record_id(order_id, number), {})
            if replace_reserved_up_front(Decimal(str(terms.get("quantity", 0))),
                                         Decimal(str(terms.get("reserve_rate", 0))),
                                         Decimal(str(topup.get("reserve_rate", 0)))):  # fmt: skip
                ids.add(held_replace_id(order_id, number, terms))
    return held
