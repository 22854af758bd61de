"""Orders domain, in memory: validation, ids, average price, events -> order changes."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from nexus_common.errors import Conflict, NexusError, Unavailable, ValidationFailed
from nexus_common.events import ENGINE_EVENT_ADAPTER, CancelOrderCommand
from nexus_common.instruments import Instrument
from nexus_orders.entry import new_order
from nexus_orders.folding import order_changes
from nexus_orders.models import ListOrdersQuery, NewOrderRequest
from nexus_orders.order import average_price, derive_order_id
from nexus_orders.service import OrderService, apply_events
from orders_fakes import Instruments, MemoryOrders, RecordingCommands, RecordingNotifier
from pydantic import ValidationError

NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
AAPL = Instrument(symbol="AAPL", tick_size=Decimal("0.01"), lot_size=Decimal("1"))
HALTED = Instrument(
    symbol="HALT", tick_size=Decimal("0.01"), lot_size=Decimal("1"), status="halted"
)


def request(**fields: Any) -> NewOrderRequest:
    body = {"symbol": "AAPL", "side": "buy", "type": "limit", "quantity": "10", "price": "101.25"}
    body.update(fields)
    return NewOrderRequest.model_validate({k: v for k, v in body.items() if v is not None})


# -- validation ------------------------------------------------------------------------------


def test_a_limit_order_defaults_to_gtc_and_starts_pending_new() -> None:
    order = new_order("acc_1", request(), AAPL, NOW)
    assert (order.status, order.time_in_force, order.price) == (
        "pending_new",
        "gtc",
        Decimal("101.25"),
    )
    assert order.remaining_quantity == Decimal("10")
    assert order.created_at == order.updated_at == "2026-01-05T14:30:00.000000Z"


def test_a_market_order_defaults_to_ioc() -> None:
    order = new_order("acc_1", request(type="market", price=None), AAPL, NOW)
    assert (order.time_in_force, order.price) == ("ioc", None)


@pytest.mark.parametrize(
    ("fields", "instrument", "code", "field"),
    [
        ({}, None, "unknown_symbol", "symbol"),
        ({"price": None}, AAPL, "missing_field", "price"),
        ({"type": "market"}, AAPL, "invalid_field", "price"),
        (
            {"type": "market", "price": None, "time_in_force": "gtc"},
            AAPL,
            "invalid_field",
            "time_in_force",
        ),
        ({"price": "101.255"}, AAPL, "price_off_tick", "price"),
        ({"quantity": "1.5"}, AAPL, "quantity_off_lot", "quantity"),
    ],
)
def test_invalid_orders_name_the_field(
    fields: dict[str, Any], instrument: Instrument | None, code: str, field: str
) -> None:
    with pytest.raises(ValidationFailed) as caught:
        new_order("acc_1", request(**fields), instrument, NOW)
    assert (caught.value.code, caught.value.field, caught.value.status) == (code, field, 400)


def test_a_halted_instrument_is_a_conflict() -> None:
    with pytest.raises(Conflict) as caught:
        new_order("acc_1", request(symbol="HALT"), HALTED, NOW)
    assert caught.value.code == "instrument_halted"


@pytest.mark.parametrize(
    ("fields", "loc"),
    [
        ({"quantity": "0"}, "quantity"),
        ({"quantity": "-5"}, "quantity"),
        ({"quantity": "ten"}, "quantity"),
        ({"quantity": 1.5}, "quantity"),
        ({"price": "0"}, "price"),
        ({"side": "short"}, "side"),
        ({"type": "trailing_stop"}, "type"),
        ({"time_in_force": "gtc_forever"}, "time_in_force"),
        ({"client_order_id": "has space"}, "client_order_id"),
        ({"client_order_id": "x" * 65}, "client_order_id"),
        ({"leverage": "10"}, "leverage"),
    ],
)
def test_the_request_model_refuses_bad_fields(fields: dict[str, Any], loc: str) -> None:
    with pytest.raises(ValidationError) as caught:
        request(**fields)
    assert caught.value.errors()[0]["loc"] == (loc,)


def test_json_numbers_are_accepted_as_decimals() -> None:
    parsed = NewOrderRequest.model_validate(
        {
            "symbol": "AAPL",
            "side": "buy",
            "type": "limit",
            "quantity": 10,
            "price": Decimal("101.25"),
        }
    )
    assert (parsed.quantity, parsed.price) == (Decimal(10), Decimal("101.25"))


def test_order_ids_derive_from_account_and_client_order_id() -> None:
    assert derive_order_id("acc_1", "my-1") == derive_order_id("acc_1", "my-1")
    assert derive_order_id("acc_1", "my-1") != derive_order_id("acc_2", "my-1")
    assert derive_order_id("acc_1", None) != derive_order_id("acc_1", None)


def test_average_price_is_rounded_half_even_to_4_places() -> None:
    assert average_price(Decimal("0"), Decimal("0")) is None
    assert average_price(Decimal("303.5"), Decimal("3")) == Decimal("101.1667")
    assert average_price(Decimal("1.00005"), Decimal("1")) == Decimal("1.0000")
    assert average_price(Decimal("1.00015"), Decimal("1")) == Decimal("1.0002")


def test_list_query_accepts_open_closed_and_statuses() -> None:
    assert ListOrdersQuery(status="open").statuses() == {"pending_new", "new", "partially_filled"}
    assert ListOrdersQuery(status="filled").statuses() == {"filled"}
    assert ListOrdersQuery().statuses() is None
    with pytest.raises(ValidationFailed) as caught:
        ListOrdersQuery(status="weird").statuses()
    assert caught.value.field == "status"


# -- events -> changes -----------------------------------------------------------------------


def ev(**fields: Any) -> Any:
    base = {
        "version": 1,
        "ts": "2026-01-05T14:30:01.000000Z",
        "correlation_id": "c",
        "symbol": "AAPL",
    }
    base["event_id"] = f"AAPL-{fields['seq']}"
    return ENGINE_EVENT_ADAPTER.validate_python({**base, **fields})


def trade(seq: int = 4, maker_remaining: str = "60", taker_remaining: str = "0") -> Any:
    return ev(
        type="trade", seq=seq, price="101.50", quantity="40", aggressor_side="buy",
        maker_order_id="M", maker_account_id="acc_m", taker_order_id="T", taker_account_id="acc_t",
        maker_filled_quantity="40", maker_filled_notional="4060.00",
        maker_remaining_quantity=maker_remaining,
        taker_filled_quantity="40", taker_filled_notional="4060.00",
        taker_remaining_quantity=taker_remaining,
    )  # fmt: skip


def test_a_trade_changes_maker_and_taker_with_absolute_values() -> None:
    maker, taker = order_changes(trade())
    assert maker.order_id == "M" and taker.order_id == "T"
    assert maker.values["status"] == "partially_filled" and maker.notify == "order_partially_filled"
    assert taker.values["status"] == "filled" and taker.notify == "order_filled"
    assert taker.values["average_price"] == Decimal("101.5000")
    assert taker.values["filled_quantity"] == Decimal("40")
    assert taker.values["remaining_quantity"] == Decimal("0")
    assert maker.seq == taker.seq == 4


def test_accepted_cancelled_rejected_cancel_rejected_and_book() -> None:
    (accepted,) = order_changes(
        ev(type="accepted", seq=1, order_id="O", account_id="a", side="buy", order_type="limit",
           price="1", quantity="1", time_in_force="gtc")
    )  # fmt: skip
    assert accepted.values["status"] == "new" and accepted.notify is None
    (cancelled,) = order_changes(
        ev(
            type="cancelled",
            seq=2,
            order_id="O",
            account_id="a",
            remaining_quantity="1",
            reason="user",
        )
    )
    assert cancelled.values["status"] == "cancelled" and cancelled.notify == "order_cancelled"
    assert cancelled.values["cancel_reason"] == "user"
    (rejected,) = order_changes(
        ev(type="rejected", seq=3, order_id="O", account_id="a", reason="insufficient_liquidity")
    )
    assert rejected.values["reject_reason"] == "insufficient_liquidity"
    (cancel_rejected,) = order_changes(
        ev(type="cancel_rejected", seq=4, order_id="O", account_id="a", reason="unknown_order")
    )
    assert "status" not in cancel_rejected.values
    assert cancel_rejected.remove == ("cancel_requested", "cancel_requested_at")
    assert (
        order_changes(ev(type="book", seq=5, side="buy", price="1", quantity="0", orders=0)) == []
    )


# -- the service with in-memory fakes --------------------------------------------------------


def service(bus: RecordingCommands | None = None) -> tuple[OrderService, MemoryOrders, RecordingCommands]:
    orders, commands = MemoryOrders(), bus or RecordingCommands()
    return OrderService(orders, Instruments(), commands, clock=lambda: NOW), orders, commands


def test_place_stores_then_sends_and_a_repeat_returns_the_first_order() -> None:
    svc, orders, bus = service()
    first, created = svc.place("acc_1", request(client_order_id="c-1"))
    assert created and len(bus.sent) == 1 and bus.sent[0].order_id == first.order_id
    again, created_again = svc.place("acc_1", request(client_order_id="c-1"))
    assert not created_again and again == first
    assert len(bus.sent) == 2  # still pending_new: the command is sent again
    with pytest.raises(Conflict) as reused:  # the same client_order_id with other terms
        svc.place("acc_1", request(client_order_id="c-1", quantity="99"))
    assert reused.value.code == "client_order_id_reused" and first.order_id in reused.value.message
    assert len(bus.sent) == 2  # nothing sent for it
    orders.items[first.order_id]["status"] = "new"
    svc.place("acc_1", request(client_order_id="c-1"))
    assert len(bus.sent) == 2  # no longer pending_new: nothing resent


def test_a_bad_request_writes_and_sends_nothing() -> None:
    svc, orders, bus = service()
    with pytest.raises(NexusError):
        svc.place("acc_1", request(symbol="NOPE"))
    assert orders.items == {} and bus.sent == []


def test_a_failed_send_answers_unavailable() -> None:
    svc, _, _ = service(RecordingCommands(fail=True))
    with pytest.raises(Unavailable) as caught:
        svc.place("acc_1", request(client_order_id="c-9"))
    assert caught.value.code == "command_not_sent"


def test_cancel_only_open_orders_of_the_caller() -> None:
    svc, orders, bus = service()
    order, _ = svc.place("acc_1", request())
    with pytest.raises(NexusError) as other:
        svc.cancel("acc_2", order.order_id)
    assert other.value.status == 404
    cancelled = svc.cancel("acc_1", order.order_id)
    assert cancelled.cancel_requested and isinstance(bus.sent[-1], CancelOrderCommand)
    orders.items[order.order_id]["status"] = "filled"
    with pytest.raises(Conflict) as caught:
        svc.cancel("acc_1", order.order_id)
    assert caught.value.code == "order_not_open"


def test_apply_events_is_idempotent_and_notifies_once_per_order_and_event() -> None:
    svc, orders, _ = service()
    maker, _ = svc.place("acc_m", request(side="sell", quantity="100", price="101.50"))
    taker, _ = svc.place("acc_t", request(quantity="40", price="102"))
    event = trade()
    event = event.model_copy(
        update={"maker_order_id": maker.order_id, "taker_order_id": taker.order_id}
    )
    notifier = RecordingNotifier()
    assert apply_events([event], orders, notifier) == 2
    assert orders.items[taker.order_id]["status"] == "filled"
    assert orders.items[maker.order_id]["status"] == "partially_filled"
    assert {m["notification_id"] for m in notifier.sent} == {
        f"AAPL-4:{maker.order_id}",
        f"AAPL-4:{taker.order_id}",
    }
    # a redelivery writes nothing; it re-sends the same notifications (same ids: deduplicated)
    before = copy.deepcopy(orders.items)
    assert apply_events([event], orders, notifier) == 0
    assert orders.items == before
    assert len({m["notification_id"] for m in notifier.sent}) == 2


class CountingOrders(MemoryOrders):
    """The in-memory orders, with each conditional write counted."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def apply(self, change: Any) -> Any:
        self.writes += 1
        return super().apply(change)


def _accepted(seq: int, order_id: str, account: str, side: str, quantity: str, epoch: int = 0) -> Any:
    return ev(type="accepted", seq=seq, epoch=epoch, order_id=order_id, account_id=account, side=side,
              order_type="limit", price="101.50", quantity=quantity, time_in_force="gtc")  # fmt: skip


def _placed(orders: MemoryOrders) -> tuple[str, str]:
    svc = OrderService(orders, Instruments(), RecordingCommands(), clock=lambda: NOW)
    maker, _ = svc.place("acc_m", request(side="sell", quantity="100", price="101.50", client_order_id="m-1"))
    taker, _ = svc.place("acc_t", request(quantity="40", price="102", client_order_id="t-1"))
    return maker.order_id, taker.order_id


def _with_ids(event: Any, maker: str, taker: str) -> Any:
    return event.model_copy(update={"maker_order_id": maker, "taker_order_id": taker})


def test_an_order_accepted_and_filled_in_one_batch_is_one_write_that_ends_where_the_events_one_by_one_end() -> None:
    # GIVEN the same two orders twice over, and one step of the engine: both accepted, then a trade
    merged_orders, single_orders = CountingOrders(), CountingOrders()
    maker, taker = _placed(merged_orders)
    assert _placed(single_orders) == (maker, taker)
    batch = [_accepted(2, maker, "acc_m", "sell", "100"), _accepted(3, taker, "acc_t", "buy", "40"),
             _with_ids(trade(), maker, taker)]  # fmt: skip
    # WHEN one consumer applies the batch, the other one event at a time
    merged_notes, single_notes = RecordingNotifier(), RecordingNotifier()
    assert apply_events(batch, merged_orders, merged_notes) == 4
    for event in batch:
        apply_events([event], single_orders, single_notes)
    # THEN each order took one write instead of two, and ends exactly where the other ends
    assert (merged_orders.writes, single_orders.writes) == (2, 4)
    assert merged_orders.items == single_orders.items
    assert merged_orders.items[taker]["status"] == "filled" and merged_orders.items[taker]["last_seq"] == 4
    # AND the notices are the same: one per fill, with the order as it is after the fill
    assert merged_notes.sent == single_notes.sent
    assert [m["kind"] for m in merged_notes.sent] == ["order_partially_filled", "order_filled"]
    # WHEN the batch is delivered again THEN nothing is written, and only the same notices go out again
    before = copy.deepcopy(merged_orders.items)
    assert apply_events(batch, merged_orders, merged_notes) == 0
    assert merged_orders.items == before
    assert {m["notification_id"] for m in merged_notes.sent} == {f"AAPL-4:{maker}", f"AAPL-4:{taker}"}


def test_each_fill_with_a_notice_is_its_own_write_and_a_new_leaders_events_are_not_merged_with_the_old() -> None:
    # GIVEN a resting maker that fills twice in one batch, then a new engine leader (epoch 1)
    orders = CountingOrders()
    maker, taker = _placed(orders)
    first = _with_ids(trade(seq=4, maker_remaining="60"), maker, taker)
    second = _with_ids(trade(seq=5, maker_remaining="20"), maker, taker)
    cancelled = ev(type="cancelled", seq=6, epoch=1, order_id=maker, account_id="acc_m", remaining_quantity="20",
                   reason="user")  # fmt: skip
    notes = RecordingNotifier()
    # WHEN the batch is applied
    apply_events([_accepted(2, maker, "acc_m", "sell", "100"), first, second, cancelled], orders, notes)
    # THEN the maker took: accepted + first fill, the second fill, the new leader's cancel (three writes)
    maker_notes = [(m["kind"], m["order"]["remaining_quantity"]) for m in notes.sent if m["account_id"] == "acc_m"]
    assert maker_notes == [("order_partially_filled", "60"), ("order_partially_filled", "20"),
                           ("order_cancelled", "0")]  # fmt: skip
    assert orders.writes == 3 + 2  # and the taker's two fills
    assert orders.items[maker]["status"] == "cancelled" and orders.items[maker]["last_epoch"] == 1
