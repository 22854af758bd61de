"""A routed order from the orders API (``RouteOrderRequest`` on routing-requests), on the routing
service's real tables (moto, from the template) and a real Redis: routed immediate-or-cancel
across the simulated venues, its ``routed_fills`` command stored with the parent and put on
order-commands, a redelivery sending the same command without routing again, the internal
venue's part sent to the engine with the external fills, an order routing cannot carry out ended with nothing filled,
and the consumer's handler reporting a message it cannot read."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures
from test_routing_service import NOW, read_stream, world  # noqa: F401 - fixtures

D = Decimal


def entered(order_id: str, quantity: int, price: str | None = "300.02", *, side: str = "buy",
            strategy: str = "SMART", symbol: str = "MSFT", tif: str = "ioc") -> Any:
    from nexus_common.events import RouteOrderRequest

    return RouteOrderRequest(order_id=order_id, account_id="acc_1", symbol=symbol, side=side,
                             order_type="limit" if price is not None else "market", quantity=D(quantity),
                             price=None if price is None else D(price), strategy=strategy, time_in_force=tif,
                             ts=NOW)


@pytest.fixture
def routing(aws: Any, world: Any) -> Any:  # noqa: F811 - the fixture imported above
    from nexus_routing.repo import KinesisEngineCommands

    world.engine = KinesisEngineCommands(aws.stream_name("OrderCommandsStream"))
    return world


def test_a_routed_order_fills_across_venues_and_its_fills_go_to_the_engine(aws: Any, routing: Any) -> None:
    # WHEN the orders API's SMART buy of 450 within 300.02 is routed
    command = routing.route_entered(entered("o-1", 450))
    # THEN it filled 450 across the venues, at or below the limit, its totals exact after each fill
    assert command.command_id == "route-o-1" and command.end_reason == "filled"
    assert sum(f.quantity for f in command.fills) == 450
    assert {f.venue for f in command.fills} >= {"Alpha", "Beta"}
    assert all(f.price <= D("300.02") for f in command.fills)
    running = D(0)
    notional = D(0)
    for fill in command.fills:
        running += fill.quantity
        notional += fill.price * fill.quantity
        totals = (fill.filled_quantity, fill.filled_notional, fill.remaining_quantity)
        assert totals == (running, notional, 450 - running)
        assert fill.fee == fill.fee.quantize(D("0.01")) and fill.mic in {"XALP", "XBET", "XGAM"}
    # AND the command is on order-commands, partitioned by symbol, as the engine reads it
    sent = [r for r in read_stream(aws, "OrderCommandsStream") if r.get("type") == "routed_fills"]
    assert sent == [json.loads(command.model_dump_json())]
    # AND the decisions were published, and the parent is readable with its children
    assert [d["order_id"] for d in read_stream(aws, "RoutingDecisionsStream")] == ["o-1"]
    parent, decisions = routing.decision_store.get("o-1")
    assert parent["body"]["parent"]["filled"] == "450" and decisions


def test_a_redelivered_request_sends_the_same_command_and_routes_nothing_again(aws: Any, routing: Any) -> None:
    first = routing.route_entered(entered("o-2", 150))
    after_first = routing.nbbo("MSFT")
    # WHEN the same request comes again (the queue redelivers it)
    again = routing.route_entered(entered("o-2", 150))
    # THEN the command is the same (the engine drops it by its id) and the venues are untouched
    assert again == first
    assert routing.nbbo("MSFT") == after_first
    sent = [r for r in read_stream(aws, "OrderCommandsStream") if r.get("type") == "routed_fills"]
    assert len(sent) == 2 and sent[0] == sent[1]


def test_an_immediate_or_cancel_remainder_is_not_left_on_any_venue(routing: Any) -> None:
    # WHEN a buy of 1000 within 300.00 is routed (200 are offered at 300.00)
    command = routing.route_entered(entered("o-3", 1000, "300.00"))
    # THEN 200 fill and 800 end unfilled
    assert sum(f.quantity for f in command.fills) == 200
    assert (command.end_reason, command.fills[-1].remaining_quantity) == ("ioc", 800)
    # AND nothing of it rests: the best bid is still the market maker's 299.99
    parent, _ = routing.decision_store.get("o-3")
    assert all(child["open"] == "0" for child in parent["body"]["parent"]["children"])
    assert routing.nbbo("MSFT").bid == D("299.99")


@pytest.mark.parametrize(("limit", "tif"), [("300.00", "gtc"), ("300.05", "day")])
def test_an_internalize_first_gtc_or_day_remainder_rests_on_the_internal_book_never_locking_a_quote(
    routing: Any, limit: str, tif: str
) -> None:
    # WHEN an INTERNALIZE_FIRST buy of 2000 is routed (more than every venue offers within the limit)
    command = routing.route_entered(entered(f"o-rest-{tif}", 2000, limit, tif=tif, strategy="INTERNALIZE_FIRST"))
    # THEN what filled is sent with the rest price and the time in force: at the limit, or a tick
    # below the best offer left on any venue (a bid resting there never locks or crosses it)
    assert (command.end_reason, command.time_in_force, command.internal_price) == ("rest", tif, None)
    assert command.fills and command.fills[-1].remaining_quantity > 0
    best_offer = routing.nbbo("MSFT").ask
    assert command.rest_price == (D(limit) if best_offer is None else min(D(limit), best_offer - D("0.01")))
    # AND nothing of it was left on a simulated venue: its remainder is the internal venue's child
    parent, _ = routing.decision_store.get(f"o-rest-{tif}")
    children = parent["body"]["parent"]["children"]
    assert all(c["open"] == "0" for c in children if c["venue"] != "NexusTrade")
    assert [c["action"] for c in children if c["venue"] == "NexusTrade"] == ["rest"]
    assert "working" not in parent


def test_the_internal_venues_better_offer_goes_to_the_engine_with_the_external_fills(aws: Any, routing: Any) -> None:
    from nexus_common import aws as nexus_aws

    # GIVEN the internal venue offers 50 at 299.95, below every simulated venue's offer
    nexus_aws.resource("dynamodb").Table(aws.table_name("BookLevelsTable")).put_item(Item={
        "symbol": "MSFT", "level": "A#0000000002999500", "side": "sell", "price": D("299.95"),
        "quantity": D(50), "orders": 1})
    # WHEN a SMART buy of 100 within 300.02 is routed
    command = routing.route_entered(entered("o-4", 100))
    # THEN 50 fill on the simulated venues at 300.00, and the rest is sent to the engine to take
    # on the internal book at 299.95 (its own offer, in the same step as the external fills)
    assert sum(f.quantity for f in command.fills) == 50 and {f.price for f in command.fills} == {D("300.00")}
    assert (command.internal_price, command.end_reason) == (D("299.95"), "internal")
    # AND the decision shows the internal child, which is neither a venue report nor a statistic
    parent, _ = routing.decision_store.get("o-4")
    internal = [c for c in parent["body"]["parent"]["children"] if c["venue"] == "NexusTrade"]
    assert [(c["quantity"], c["limit_price"], c["open"]) for c in internal] == [("50", "299.95", "50")]
    assert all(r["venue"] != "NexusTrade" for r in read_stream(aws, "VenueReportsStream"))


def test_an_order_routing_cannot_carry_out_ends_with_nothing_filled(aws: Any, routing: Any) -> None:
    from nexus_common.instrument_store import DynamoInstruments
    from nexus_common.instruments import Instrument

    DynamoInstruments(aws.table_name("InstrumentsTable")).put_many(
        [Instrument(symbol="HALTD", tick_size=D("0.01"), lot_size=D("1"), status="halted")])
    # WHEN a halted symbol's order and an unknown symbol's order are routed
    halted = routing.route_entered(entered("o-5", 10, symbol="HALTD"))
    unknown = routing.route_entered(entered("o-6", 10, symbol="NOPE"))
    # THEN each ends at once with nothing filled (its reservation is given back downstream)
    assert (halted.fills, halted.end_reason) == ([], "symbol_halted")
    assert (unknown.fills, unknown.end_reason) == ([], "unknown_symbol")
    # AND that end is kept: redelivered once the symbol trades again, it is sent again as it was
    # (the engine drops the repeat), never routed a second time
    DynamoInstruments(aws.table_name("InstrumentsTable")).put_many(
        [Instrument(symbol="HALTD", tick_size=D("0.01"), lot_size=D("1"))])
    assert routing.route_entered(entered("o-5", 10, symbol="HALTD")) == halted


def test_the_handler_routes_each_message_and_reports_one_it_cannot_read(
    aws: Any, routing: Any, monkeypatch: Any
) -> None:
    from nexus_routing import on_routing_requests

    monkeypatch.setattr(on_routing_requests, "service", lambda: routing)
    event = {"Records": [
        {"messageId": "m-1", "body": entered("o-7", 100).model_dump_json()},
        {"messageId": "m-2", "body": json.dumps({"type": "route", "order_id": "o-8"})},
    ]}
    answer = on_routing_requests.handler(event, None)
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    sent = [r["order_id"] for r in read_stream(aws, "OrderCommandsStream") if r.get("type") == "routed_fills"]
    assert sent == ["o-7"]


def test_the_605_statistics_count_the_internal_venues_part_from_the_order(aws: Any, routing: Any) -> None:
    from datetime import timedelta

    from nexus_common import aws as nexus_aws
    from nexus_routing.repo import DynamoOrderTotals

    # GIVEN a SMART buy of 100 that took 50 on the simulated venues and sent the rest inside
    # (the internal venue offers 50 at 300.00 too, and no fee: SMART takes it first)
    nexus_aws.resource("dynamodb").Table(aws.table_name("BookLevelsTable")).put_item(Item={
        "symbol": "MSFT", "level": "A#0000000003000000", "side": "sell", "price": D("300.00"),
        "quantity": D(50), "orders": 1})
    command = routing.route_entered(entered("o-605", 100))
    assert sum(f.quantity for f in command.fills) == 50 and command.internal_price == D("300.00")
    # AND the engine filled the other 50 at 300.00 (the order's totals, as the orders consumer SETs them)
    nexus_aws.resource("dynamodb").Table(aws.table_name("OrdersTable")).put_item(Item={
        "order_id": "o-605", "account_id": "acc_1", "filled_quantity": D(100),
        "filled_notional": D("15000.00") + D("15000.00"), "updated_at": (NOW + timedelta(seconds=1)).isoformat()})
    window = (NOW - timedelta(days=1), NOW + timedelta(days=1))
    # WHEN the statistics are read without and with the orders table
    alone = routing.execution_quality(*window, "MSFT")
    routing.order_totals = DynamoOrderTotals(aws.table_name("OrdersTable"))
    counted = routing.execution_quality(*window, "MSFT")

    # THEN the external fills alone are 50 shares; with the order's totals all 100 executed
    def bucket(stats: dict[str, Any]) -> dict[str, Any]:
        return next(b for b in stats["buckets"] if b["bucket"] == "100-499")

    assert bucket(alone)["executed_shares"] == "50"
    assert bucket(counted)["executed_shares"] == "100" and D(bucket(counted)["fill_rate_pct"]) == 100


def test_a_crossed_market_at_arrival_leaves_the_order_out_of_the_605_statistics(aws: Any, routing: Any) -> None:
    from datetime import timedelta

    from nexus_common import aws as nexus_aws

    # GIVEN the internal venue offers below the simulated venues' bids when a buy arrives
    nexus_aws.resource("dynamodb").Table(aws.table_name("BookLevelsTable")).put_item(Item={
        "symbol": "MSFT", "level": "A#0000000002999500", "side": "sell", "price": D("299.95"),
        "quantity": D(50), "orders": 1})
    routing.route_entered(entered("o-crossed", 100))
    # WHEN the statistics are read, THEN they answer, without that order (no quote to measure by)
    stats = routing.execution_quality(NOW - timedelta(days=1), NOW + timedelta(days=1), "MSFT")
    assert all(b["orders"] == 0 for b in stats["buckets"])
