"""The account side of execution events: cash, buying power, holdings and reservation releases.

Pure domain (no boto3). One ``AccountChange`` per event per account: deltas that the data access
adds to the account item with one conditional write, guarded by the account's watermark for the
event's symbol (``seq#S``), so a redelivered or older event changes nothing.

The risk consumer owns ``cash`` on the account item: a fill moves it by the fill's cash amount
and fee (``nexus_common.fees``), trade date, as the ledger's fill entry does; ``available_cash``
moves by the same amount plus what the order's reservation gives back (``nexus_common.risk``).
Sale proceeds are available at once (buying power on trade date); the cash itself settles T+2
in the ledger (pending cash -> cash), which does not change ``cash`` here.

Releases per order type (``nexus_common.risk`` has the reservation side):

* limit, market, stop, stop-limit, iceberg: fills release in proportion (``fill_release``), a
  cancel, expiry or rejection releases the open quantity; a parked stop holds its reservation
  until it triggers and fills, or is cancelled or expires (a trigger itself changes nothing).
* OCO legs (``oco-<uuid>.tp`` / ``.sl``) share one reservation for the group: fills of either
  leg release in proportion (the engine keeps both legs' open quantities equal); a leg cut or
  cancelled because its sibling filled (reason ``oco``) releases nothing; the group's open
  quantity is released once when it ends by cancel, mass cancel, expiry or self-trade
  prevention (the engine ends both legs in the same step; a step's second leg releases nothing).
  A self-trade ``decrement`` of a leg releases what it took off once for the group (the engine
  takes as much off the sibling, reason ``oco``). A stop-loss leg that triggered as a market
  order and whose unfillable rest is cancelled releases nothing: its sibling still covers the
  group. A refused group (rejected with the group id) releases the whole group.
* an entry closed by the fence (``rejected``, reason ``entry_incomplete``: the orders API stored
  the order, or the OCO group's legs, ``pending_new`` and stopped before its command surely left;
  its reservation may or may not have been written): released only while the account item holds
  its reservation id (see below), never by the coalesced write.
* replace: ``replaced`` (reason ``user``) re-bases the order's reservation to its new open
  quantity with the terms the orders API stored (``<order>~r<n>``): the difference it reserved
  up front is settled, a decrease released; ``replace_rejected`` gives the difference back. A
  buy's price top-ups (``<order>~p<n>``) are released when the order ends.
* self-trade ``decrement``: the quantity taken off the order that stays (``replaced``, reason
  ``self_trade``) is released like a cancel of that much (``self_trade_cut``).
* routed orders (``venue_fill`` and ``route_ended``, ``order_id`` the routed parent, reserved
  under its own id like any order): a ``venue_fill`` is a fill of the parent's account booked like
  an engine fill, with the venue's ``fee`` as it comes (negative: a rebate that adds to cash),
  never the platform's schedule, and releases the parent's reservation in proportion
  (``remaining_quantity`` after it); ``route_ended`` releases the parent's
  ``remaining_quantity``, which will never fill. The releases of the fills and of the end
  telescope to exactly what was reserved.

Each change also names the reservation ids the event ends (``ended_ids``), which the write
DELETEs from the account item's ``reservations`` set (``nexus_common.risk``): an order's id when
it fills to zero, is cancelled, expires or is rejected (but by the fence: below); an OCO group's
id when a leg fills to zero (the legs' open quantities are equal: the group is done), when the
group is cancelled, expires or is ended by self-trade prevention (``GROUP_END_REASONS``) or is
rejected (but by the fence); a routed parent's id when a ``venue_fill`` fills it to zero or on
its ``route_ended``; the id replace ``n``'s terms item names (``<order>~r<n>.<digest>``;
``nexus_common.risk.held_replace_id``) on its ``replaced`` or ``replace_rejected``. A
DELETE of an id the set does not hold (an unreserved order, an order reserved before the set
existed) changes nothing.

Releases while held (``held_releases``), the same for a replace refused by its fence
(``replace_rejected``, reason ``entry_incomplete``) that reserved up front: what it gives back is
under the replace's own id, so a replace the engine did apply (its id ended) gives nothing back twice.
A fenced replace that reserved nothing up front (a decrease; no id to hold) is refused as the
engine's own refusals are. An entry closed by the fence gives no ``AccountChange``
(no delta, no watermark move, no id in ``ended_ids``) but a ``HeldRelease``: its reservation (the
order id, or the group id; the amounts from the order's facts, an OCO group's from its first
leg, as the rejection of a group reads them) given back by id with one conditional write, only
while the account item holds the id (``nexus_common.risk.release_held_update``, the orders API's
compensation): a reservation never written gives nothing back, and a redelivery finds the id
gone. An order the orders table does not know, or not reserved, gives nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from nexus_common.events import ENTRY_INCOMPLETE
from nexus_common.fees import FeeSchedule, Liquidity, cash_amount, fee
from nexus_common.risk import (
    ZERO,
    fill_release,
    group_of_leg,
    held_replace_id,
    is_group_id,
    oco_leg_ids,
    replace_number,
    replace_record_id,
    replace_reserved_up_front,
    reservation_id,
    reserve_amount,
    topup_record_id,
)

GROUP_END_REASONS: Final = frozenset({"user", "mass_cancel", "day", "gtd", "self_trade"})
MAX_REPLACES: Final = 10_000


@dataclass(frozen=True)
class OrderFacts:
    """What the orders table says of an order's reservation (immutable after the first put)."""

    order_id: str
    side: str
    quantity: Decimal
    reserved: bool
    reserve_rate: Decimal | None
    # a replace's terms item: the id of what the replace reserved up front (None: written before
    # ids carried a digest, the id is the item's key; ``nexus_common.risk.held_replace_id``)
    reservation_id: str | None = None


@dataclass
class AccountChange:
    account_id: str
    symbol: str
    seq: int
    event_id: str
    cash: Decimal = ZERO
    available: Decimal = ZERO
    pos: Decimal = ZERO
    sellable: Decimal = ZERO
    buying: Decimal = ZERO
    notes: list[str] = field(default_factory=list)
    ended_ids: list[str] = field(default_factory=list)  # reservation ids to remove from the account's set

    def is_empty(self) -> bool:
        return not any((self.cash, self.available, self.pos, self.sellable, self.buying)) and not self.ended_ids

    def end(self, rid: str, facts: OrderFacts | None) -> None:
        """The reservation ``rid`` ends, if the orders table says it was reserved (an order that is
        not reserved has no id in the set: no write for it)."""
        if facts is not None and facts.reserved and rid not in self.ended_ids:
            self.ended_ids.append(rid)


FactsLookup = Callable[[str], OrderFacts | None]


@dataclass(frozen=True)
class HeldRelease:
    """A reservation to give back by id, only while the account item holds ``reservation_id``
    (``nexus_common.risk.release_held_update``): ``amount`` USD and ``quantity`` of ``buying#S``
    for a buy, ``quantity`` of ``sellable#S`` for a sell (``amount`` 0)."""

    account_id: str
    symbol: str
    reservation_id: str
    side: str
    quantity: Decimal
    amount: Decimal
    event_id: str


def _fill(
    change: AccountChange,
    side: str,
    liquidity: Liquidity,
    quantity: Decimal,
    price: Decimal,
    remaining_after: Decimal,
    facts: OrderFacts | None,
    fees: FeeSchedule,
    charged: Decimal | None = None,
) -> None:
    """A fill of ``quantity`` at ``price`` with ``remaining_after`` left open; ``charged``: the fee
    when it is given (a routed order's venue fee, negative for a rebate), else the schedule's."""
    amount = cash_amount(quantity, price)
    if charged is None:
        charged = fee(fees, liquidity, amount)
    reserved = facts is not None and facts.reserved
    if side == "buy":
        change.cash -= amount + charged
        change.available -= amount + charged
        change.pos += quantity
        change.sellable += quantity
        if reserved and facts is not None and facts.reserve_rate is not None:
            change.available += fill_release(quantity, remaining_after, facts.reserve_rate)
        else:
            change.buying += quantity
    else:
        change.cash += amount - charged
        change.available += amount - charged
        change.pos -= quantity
        change.buying -= quantity
        if not reserved:
            change.sellable -= quantity
    change.notes.append(f"{liquidity} {side} {quantity}@{price} fee {charged}")


def _release(change: AccountChange, facts: OrderFacts | None, remaining: Decimal) -> None:
    if facts is None or not facts.reserved or remaining <= 0:
        return
    if facts.side == "buy":
        if facts.reserve_rate is not None:
            change.available += reserve_amount(remaining, facts.reserve_rate)
        change.buying -= remaining
    else:
        change.sellable += remaining


def _release_topups(change: AccountChange, order_id: str, facts: FactsLookup) -> None:
    """A buy that ended: give back the price top-ups its replaces held (``<order>~p<n>``)."""
    for number in range(1, MAX_REPLACES + 1):
        topup = facts(topup_record_id(order_id, number))
        if topup is None or topup.side != "buy" or not topup.reserved:
            return  # no more top-ups (the orders API writes them as reserved buys, numbered 1, 2, ...)
        if topup.reserve_rate:
            change.available += topup.reserve_rate


def _ended(change: AccountChange, order_id: str, found: OrderFacts | None, facts: FactsLookup) -> None:
    if found is not None and found.reserved and found.side == "buy" and group_of_leg(order_id) is None:
        _release_topups(change, order_id, facts)


def _replace_terms(event: Any, facts: FactsLookup) -> OrderFacts | None:
    number = replace_number(event.order_id, event.correlation_id)
    return None if number is None else facts(replace_record_id(event.order_id, number))


def _replaced(change: AccountChange, event: Any, facts: FactsLookup) -> None:
    """Re-base the order's reservation from its open quantity before the replace to the one
    after (``remaining_quantity``), settling what the API reserved up front."""
    terms = _replace_terms(event, facts)
    order = facts(event.order_id)
    if terms is None or order is None or not order.reserved:
        return
    quantity_change = terms.quantity
    held_extra = max(quantity_change, ZERO)  # shares reserved up front
    after = event.remaining_quantity
    before = after - quantity_change
    if order.side == "buy":
        if order.reserve_rate is not None:
            rebase = reserve_amount(after, order.reserve_rate) - reserve_amount(before, order.reserve_rate)
            change.available += (terms.reserve_rate or ZERO) - rebase
        change.buying += quantity_change - held_extra  # buying#S follows the open quantity
    else:
        change.sellable += held_extra - quantity_change


def _replace_refused(change: AccountChange, event: Any, facts: FactsLookup) -> None:
    terms = _replace_terms(event, facts)
    if terms is None or not terms.reserved:
        return
    held_extra = max(terms.quantity, ZERO)
    if terms.side == "buy":
        change.available += terms.reserve_rate or ZERO
        change.buying -= held_extra
    else:
        change.sellable += held_extra


def account_changes(
    event: Any, facts: FactsLookup, fees: FeeSchedule, ended_groups: set[tuple[str, str]] | None = None
) -> list[AccountChange]:
    """The changes one execution event makes, one per account (maker and taker of a self-trade
    are merged into one change, so the account item gets one write for the event).

    ``ended_groups`` carries, across the events of one call of ``changes_of``, the OCO groups
    whose end (by cancel or expiry) an engine step has already released."""
    by_account: dict[str, AccountChange] = {}
    ended = ended_groups if ended_groups is not None else set()

    def change_for(account_id: str) -> AccountChange:
        found = by_account.get(account_id)
        if found is None:
            found = AccountChange(account_id, event.symbol, event.seq, event.event_id)
            by_account[account_id] = found
        return found

    kind = getattr(event, "type", None)
    if kind == "trade":
        taker_side = event.aggressor_side
        maker_side = "sell" if taker_side == "buy" else "buy"
        maker_facts = facts(event.maker_order_id)
        taker_facts = facts(event.taker_order_id)
        maker = change_for(event.maker_account_id)
        _fill(maker, maker_side, "maker", event.quantity, event.price, event.maker_remaining_quantity, maker_facts,
              fees)  # fmt: skip
        if event.maker_remaining_quantity == 0:
            _ended(maker, event.maker_order_id, maker_facts, facts)
            maker.end(reservation_id(event.maker_order_id), maker_facts)
        taker = change_for(event.taker_account_id)
        _fill(taker, taker_side, "taker", event.quantity, event.price, event.taker_remaining_quantity, taker_facts,
              fees)  # fmt: skip
        if event.taker_remaining_quantity == 0:
            _ended(taker, event.taker_order_id, taker_facts, facts)
            taker.end(reservation_id(event.taker_order_id), taker_facts)
    elif kind in ("cancelled", "expired"):
        change = change_for(event.account_id)
        found = facts(event.order_id)
        group = group_of_leg(event.order_id)
        if group is None:
            _release(change, found, event.remaining_quantity)
            _ended(change, event.order_id, found, facts)
            change.end(event.order_id, found)
        elif event.reason in GROUP_END_REASONS and (group, event.correlation_id) not in ended:
            ended.add((group, event.correlation_id))
            _release(change, found, event.remaining_quantity)
            change.end(group, found)
    elif kind == "rejected" and not _fenced(event):
        found = _rejected_facts(event, facts)
        change = change_for(event.account_id)
        _release(change, found, found.quantity if found else ZERO)
        change.end(reservation_id(event.order_id), found)
    elif kind == "venue_fill":
        change = change_for(event.account_id)
        parent = facts(event.order_id)
        _fill(change, event.side, event.liquidity, event.quantity, event.price, event.remaining_quantity, parent,
              fees, charged=event.fee)  # fmt: skip
        if event.remaining_quantity == 0:
            _ended(change, event.order_id, parent, facts)
            change.end(reservation_id(event.order_id), parent)
    elif kind == "route_ended":
        change = change_for(event.account_id)
        parent = facts(event.order_id)
        if event.remaining_quantity > 0:  # at zero, the fill that took it there ended the parent
            _release(change, parent, event.remaining_quantity)
            _ended(change, event.order_id, parent, facts)
        change.end(reservation_id(event.order_id), parent)
    elif kind == "replaced" and event.reason == "user":
        change = change_for(event.account_id)
        _replaced(change, event, facts)
        _end_replace(change, event, facts)
    elif kind == "replace_rejected" and not (_fenced(event) and _up_front(event, facts)):
        change = change_for(event.account_id)
        _replace_refused(change, event, facts)
        _end_replace(change, event, facts)
    return [change for change in by_account.values() if not change.is_empty()]


def _fenced(event: Any) -> bool:
    """An entry or a replace refused by its fence (released only while held: ``held_releases``)."""
    return getattr(event, "type", None) in ("rejected", "replace_rejected") and event.reason == ENTRY_INCOMPLETE


def _rejected_facts(event: Any, facts: FactsLookup) -> OrderFacts | None:
    """The facts of a rejected order: a refused OCO group's are its first leg's."""
    order_id = event.order_id
    return facts(oco_leg_ids(order_id)[0]) if is_group_id(order_id) else facts(order_id)


def held_releases(events: Iterable[Any], facts: FactsLookup) -> list[HeldRelease]:
    """The releases while held of ``events`` (see the module docstring): one per entry closed by
    the fence whose order is known and reserved, with what ``_release`` gives back for a
    rejection (the order's quantity; a buy's cash at its reserve rate)."""
    releases: list[HeldRelease] = []
    for event in events:
        if not _fenced(event):
            continue
        if event.type == "replace_rejected":
            releases.extend(_replace_held_release(event, facts))
            continue
        found = _rejected_facts(event, facts)
        if found is None or not found.reserved or found.quantity <= 0:
            continue
        amount = ZERO
        if found.side == "buy" and found.reserve_rate is not None:
            amount = reserve_amount(found.quantity, found.reserve_rate)
        releases.append(HeldRelease(event.account_id, event.symbol, reservation_id(event.order_id), found.side,
                                    found.quantity, amount, event.event_id))  # fmt: skip
    return releases


def _up_front(event: Any, facts: FactsLookup) -> tuple[int, OrderFacts] | None:
    """Replace ``n`` of the event's order and its terms, if it wrote a reservation of its own
    (``<order>~r<n>.<digest>``); else None. The orders API writes one when the terms need shares
    (a quantity increase) or cash (the cash settled on ``replaced`` plus a buy's price top-up)
    beyond what the order holds, before the replace begins; a replace that needs nothing (a
    decrease) writes none."""
    number = replace_number(event.order_id, event.correlation_id)
    terms = _replace_terms(event, facts)
    if number is None or terms is None or not terms.reserved:
        return None
    topup = facts(topup_record_id(event.order_id, number)) if terms.side == "buy" else None
    topup_cash = topup.reserve_rate or ZERO if topup is not None else ZERO
    reserved = replace_reserved_up_front(terms.quantity, terms.reserve_rate or ZERO, topup_cash)
    return (number, terms) if reserved else None


def _replace_held_release(event: Any, facts: FactsLookup) -> list[HeldRelease]:
    """A replace refused by its fence that reserved up front: what ``_replace_refused`` gives
    back (the up-front shares, a buy's settled cash, which a price increase with a smaller
    quantity makes negative), under the id its terms item names and only while the account holds it,
    the id removed. A replace the engine applied before (its id ended by ``replaced``) gives
    nothing back. A buy's price top-up stays held until the order ends, as on any refusal. One
    that reserved nothing up front gives none (``account_changes`` refuses it as usual)."""
    found = _up_front(event, facts)
    if found is None:
        return []
    number, terms = found
    amount = (terms.reserve_rate or ZERO) if terms.side == "buy" else ZERO
    return [HeldRelease(event.account_id, event.symbol, _held_replace_id(event.order_id, number, terms), terms.side,
                        max(terms.quantity, ZERO), amount, event.event_id)]  # fmt: skip


def _held_replace_id(order_id: str, number: int, terms: OrderFacts | None) -> str:
    stored = {"reservation_id": terms.reservation_id} if terms is not None else None
    return held_replace_id(order_id, number, stored)


def _end_replace(change: AccountChange, event: Any, facts: FactsLookup) -> None:
    """Replace ``n`` is settled (``replaced``) or refused: what it reserved up front is no longer
    held under its own id (the order's id holds what stays)."""
    number = replace_number(event.order_id, event.correlation_id)
    if number is not None:
        terms = _replace_terms(event, facts)
        change.end(_held_replace_id(event.order_id, number, terms), terms)


def _is_stp_cancel(event: Any, replaced: Any) -> bool:
    return (
        getattr(event, "type", None) == "cancelled"
        and event.reason == "self_trade"
        and event.account_id == replaced.account_id
        and event.correlation_id == replaced.correlation_id
    )


def self_trade_cut(events: list[Any], index: int) -> Decimal:
    """How much a self-trade ``decrement`` took off the order of ``replaced`` event ``index``.

    The engine reduces both orders by the smaller one's open quantity, which it cancels in the
    same step right next to the ``replaced`` of the other (the resting one's cancel just before
    the taker's ``replaced``, or the taker's cancel just after the resting one's): that cancel's
    ``remaining_quantity`` is the cut."""
    replaced = events[index]
    for neighbour in (index - 1, index + 1):
        if 0 <= neighbour < len(events) and _is_stp_cancel(events[neighbour], replaced):
            return Decimal(events[neighbour].remaining_quantity)
    return ZERO


def account_keys(events: Iterable[Any]) -> list[tuple[str, str]]:
    """The (account, symbol) pairs whose watermarks a batch's writes may need, read before its
    changes are known: every account an event names (a trade's maker and taker), with the
    event's symbol. A superset of the changes' pairs is harmless; a pair it misses is read when
    the changes are known."""
    wanted: dict[tuple[str, str], None] = {}
    for event in events:
        accounts: tuple[Any, ...]
        if getattr(event, "type", None) == "trade":
            accounts = (event.maker_account_id, event.taker_account_id)
        else:
            accounts = (getattr(event, "account_id", None),)
        for account_id in accounts:
            if account_id:
                wanted[(account_id, event.symbol)] = None
    return list(wanted)


def prefetch_ids(events: Iterable[Any]) -> list[str]:
    """Every facts id ``changes_of`` may read for ``events``, for one batched read: the orders
    named (a routed parent for its ``venue_fill`` and ``route_ended``), the first price top-up
    (``~p1``) of an order that may end, the group's first leg of a refused OCO group, and the
    terms of a replace (``~r<n>``). The later top-ups (``~p2``...) are read one by one, and only
    for an order that was replaced."""
    wanted: dict[str, None] = {}
    for event in events:
        kind = getattr(event, "type", None)
        if kind == "trade":
            named = [event.maker_order_id, event.taker_order_id]
            ended = [o for o, left in named_left(event) if left == 0]
        elif kind == "venue_fill":
            named, ended = [event.order_id], [event.order_id] if event.remaining_quantity == 0 else []
        elif kind == "route_ended":
            named, ended = [event.order_id], [event.order_id] if event.remaining_quantity > 0 else []
        elif kind in ("cancelled", "expired", "rejected", "replaced", "replace_rejected"):
            named, ended = [event.order_id], [event.order_id] if kind in ("cancelled", "expired") else []
            if kind == "rejected" and is_group_id(event.order_id):
                named.append(oco_leg_ids(event.order_id)[0])
            number = replace_number(event.order_id, event.correlation_id) if "replace" in kind else None
            if number is not None:
                named.append(replace_record_id(event.order_id, number))
                if kind == "replace_rejected" and _fenced(event):  # its top-up: was anything reserved?
                    named.append(topup_record_id(event.order_id, number))
        else:
            continue
        for order_id in named:
            wanted[order_id] = None
        for order_id in ended:
            if group_of_leg(order_id) is None:
                wanted[topup_record_id(order_id, 1)] = None
    return list(wanted)


def named_left(event: Any) -> list[tuple[str, Decimal]]:
    return [(event.maker_order_id, event.maker_remaining_quantity), (event.taker_order_id,
                                                                     event.taker_remaining_quantity)]


def changes_of(events: Iterable[Any], facts: FactsLookup, fees: FeeSchedule) -> list[AccountChange]:
    ended_groups: set[tuple[str, str]] = set()
    ordered = list(events)
    changes: list[AccountChange] = []
    for index, event in enumerate(ordered):
        if getattr(event, "type", None) == "replaced" and event.reason == "self_trade":
            cut = self_trade_cut(ordered, index)
            found = facts(event.order_id)
            if cut > 0:  # an OCO leg's cut is the group's: its sibling's (reason oco) releases nothing
                change = AccountChange(event.account_id, event.symbol, event.seq, event.event_id)
                # the cut is released like a cancel of that much, from the open quantity it left
                if found is not None and found.reserved and found.side == "buy" and found.reserve_rate is not None:
                    after = event.remaining_quantity
                    change.available += reserve_amount(after + cut, found.reserve_rate) - reserve_amount(
                        after, found.reserve_rate
                    )
                    change.buying -= cut
                elif found is not None and found.reserved and found.side == "sell":
                    change.sellable += cut
                if not change.is_empty():
                    changes.append(change)
            continue
        changes.extend(account_changes(event, facts, fees, ended_groups))
    return changes
