"""A routed order's external fills on the WebSocket: its account's ``fills`` and ``orders``
channels hear of each fill and of the route's end; the market channels (trades, ticker, book)
hear nothing, as these are not trades of this venue."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from lambda_events import FakeLambdaContext, kinesis_event, load_event
from nexus_common.events import ENGINE_EVENT_ADAPTER
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.instruments import DEMO_INSTRUMENTS
from nexus_streaming import on_execution_events as fanout
from nexus_streaming import on_websocket_routes as routes
from nexus_streaming.domain import fan_out
from ws_frames import posted


def routed_events() -> list[Any]:
    return [ENGINE_EVENT_ADAPTER.validate_python(e) for e in load_event("routed_fills.json")["events"]]


def test_a_routed_step_reaches_the_accounts_channels_only() -> None:
    # GIVEN the engine's record of a routed order: two external fills, then its end with 10 unfilled
    # WHEN it is fanned out
    result = fan_out(routed_events())
    # THEN only the account's own channels carry it
    assert result is not None and set(result.channels) == {"fills:acc_1", "orders:acc_1"}
    fills = result.channels["fills:acc_1"]
    assert [(f["venue"], f["price"], f["quantity"], f["fee"], f["status"]) for f in fills] == [
        ("ARCX-SIM", "100.01", "60", "0.18", "partially_filled"),
        ("BATS-SIM", "100.02", "30", "-0.06", "partially_filled"),
    ]
    orders = result.channels["orders:acc_1"]
    assert [(o["event"], o["status"], o["remaining_quantity"]) for o in orders] == [
        ("venue_fill", "partially_filled", "40"),
        ("venue_fill", "partially_filled", "10"),
        ("route_ended", "cancelled", "10"),
    ]
    assert orders[-1]["reason"] == "ioc" and orders[-1]["filled_quantity"] == "90"


def _subscribe(connection_id: str, account_id: str, body: dict[str, Any]) -> None:
    context = {"connectionId": connection_id,
               "authorizer": {"account_id": account_id, "accounts": account_id, "principalId": account_id}}  # fmt: skip
    connect = {"requestContext": {**context, "routeKey": "$connect", "eventType": "CONNECT"}}
    assert routes.handler(connect, FakeLambdaContext()) == {"statusCode": 200}
    message = {"requestContext": {**context, "routeKey": "subscribe", "eventType": "MESSAGE"},
               "body": json.dumps({"action": "subscribe", **body})}  # fmt: skip
    assert routes.handler(message, FakeLambdaContext()) == {"statusCode": 200}


def test_the_fan_out_handler_pushes_routed_fills_to_the_account_and_not_to_the_market(aws: Any) -> None:
    # GIVEN a subscriber of AAPL's trades and the routed account's fills subscriber
    aws.use_function_env("StreamingRoutesFunction")
    DynamoInstruments(aws.table_name("InstrumentsTable")).put_many(DEMO_INSTRUMENTS)
    _subscribe("conn-market", "acc_other", {"channel": "trades", "symbol": "AAPL"})
    _subscribe("conn-owner", "acc_1", {"channel": "fills"})
    # WHEN the routed record is delivered
    aws.use_function_env("StreamingFanOutFunction")
    record = {"events": load_event("routed_fills.json")["events"]}
    assert fanout.handler(kinesis_event(record), FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the owner got its two fills, numbered on its channel, and the market subscriber nothing
    fills = [m for m in posted("conn-owner") if m["type"] == "fills"]
    assert [(m["seq"], m["venue"]) for m in fills] == [(1, "ARCX-SIM"), (2, "BATS-SIM")]
    assert [m["type"] for m in posted("conn-market")] == ["subscribed"]


def working_records() -> list[list[Any]]:
    return [[ENGINE_EVENT_ADAPTER.validate_python(e) for e in record["events"]]
            for record in load_event("routed_working.json")["records"]]


def test_a_route_resting_on_a_venue_is_an_order_update_naming_the_venue() -> None:
    # GIVEN the engine's records of a gtc routed order: 60 filled, 40 rest on BATS-SIM at 100,
    # 30 of them fill there, then it is cancelled there
    first, later, end = working_records()
    # WHEN the first is fanned out
    result = fan_out(first)
    # THEN the account's orders channel hears of the fill, then where the rest works (no market message)
    assert result is not None and set(result.channels) == {"fills:acc_1", "orders:acc_1"}
    fill, working = result.channels["orders:acc_1"]
    assert (fill["event"], fill["status"]) == ("venue_fill", "partially_filled")
    assert {k: working[k] for k in ("event", "status", "venue", "price", "time_in_force", "filled_quantity",
                                    "remaining_quantity", "side", "quantity")} == {
        "event": "route_working", "status": "partially_filled", "venue": "BATS-SIM", "price": "100",
        "time_in_force": "gtc", "filled_quantity": "60", "remaining_quantity": "40", "side": "buy", "quantity": "100",
    }  # fmt: skip
    # AND the later fill and the end follow with the order's totals
    later_result, end_result = fan_out(later), fan_out(end)
    assert later_result is not None and end_result is not None
    assert [(o["event"], o["remaining_quantity"]) for o in later_result.channels["orders:acc_1"]] == [
        ("venue_fill", "10")]
    assert [(o["event"], o["status"], o["reason"], o["filled_quantity"]) for o in end_result.channels[
        "orders:acc_1"]] == [("route_ended", "cancelled", "cancelled", "90")]


def test_a_route_resting_with_nothing_filled_is_new_and_one_that_expires_is_expired() -> None:
    first = working_records()[0]
    working = first[1].model_copy(update={"filled_quantity": Decimal(0), "filled_notional": Decimal(0),
                                                   "remaining_quantity": Decimal(100)})
    result = fan_out([working])
    assert result is not None
    assert [(o["event"], o["status"]) for o in result.channels["orders:acc_1"]] == [("route_working", "new")]
    end = working_records()[2][0].model_copy(update={"reason": "expired"})
    result = fan_out([end])
    assert result is not None
    assert [(o["status"], o["reason"]) for o in result.channels["orders:acc_1"]] == [("expired", "expired")]
