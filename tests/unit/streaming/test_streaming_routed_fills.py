"""A routed order's external fills on the WebSocket: its account's ``fills`` and ``orders``
channels hear of each fill and of the route's end; the market channels (trades, ticker, book)
hear nothing, as these are not trades of this venue."""

from __future__ import annotations

import json
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
