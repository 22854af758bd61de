"""Helpers of the surveillance service tests (importable as ``surv_service_helpers``): builders of
the platform's engine events and of the Kinesis events the consumer receives, readers of the
streams and queues under moto, and an API caller with an authorizer context."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
from lambda_events import call, rest_event

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=UTC)
EVENTS_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/nexus-test-execution-events"
COMMANDS_ARN = "arn:aws:kinesis:us-east-1:123456789012:stream/nexus-test-order-commands"
# usr_a owns two accounts (a wash trade between them is one owner on both sides); usr_b one
OWNERS = {"acc_a1": "usr_a", "acc_a2": "usr_a", "acc_b": "usr_b", "acc_c": "usr_c"}


def ts(ms: int) -> str:
    return (T0 + timedelta(milliseconds=ms)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Flow:
    """A symbol's engine events with consecutive ``seq`` (what the matching engine would emit)."""

    def __init__(self, symbol: str = "AAPL") -> None:
        self.symbol = symbol
        self.seq = 0

    def _env(self, kind: str, ms: int) -> dict[str, Any]:
        self.seq += 1
        return {"event_id": f"{self.symbol}-{self.seq}", "type": kind, "ts": ts(ms), "correlation_id": "c",
                "symbol": self.symbol, "seq": self.seq, "epoch": 0}  # fmt: skip

    def accepted(self, order_id: str, account: str, side: str, qty: str, price: str, ms: int) -> dict[str, Any]:
        return {**self._env("accepted", ms), "order_id": order_id, "account_id": account, "side": side,
                "order_type": "limit", "price": price, "quantity": qty, "time_in_force": "gtc"}  # fmt: skip

    def cancelled(self, order_id: str, account: str, remaining: str, ms: int) -> dict[str, Any]:
        return {**self._env("cancelled", ms), "order_id": order_id, "account_id": account,
                "remaining_quantity": remaining, "reason": "user"}  # fmt: skip

    def trade(self, maker: tuple[str, str], taker: tuple[str, str], qty: str, price: str, aggressor: str,
              ms: int) -> dict[str, Any]:  # fmt: skip
        q = Decimal(qty)
        notional = str(q * Decimal(price))
        return {**self._env("trade", ms), "price": price, "quantity": qty, "aggressor_side": aggressor,
                "maker_order_id": maker[0], "maker_account_id": maker[1], "taker_order_id": taker[0],
                "taker_account_id": taker[1], "maker_filled_quantity": qty, "maker_filled_notional": notional,
                "maker_remaining_quantity": "0", "taker_filled_quantity": qty, "taker_filled_notional": notional,
                "taker_remaining_quantity": "0"}  # fmt: skip


def wash_episode(flow: Flow, start_ms: int = 0) -> list[dict[str, Any]]:
    """usr_a's two accounts trade with each other: a buy rests, the sell takes it."""
    return [
        flow.accepted("o-buy", "acc_a1", "buy", "100", "100.00", start_ms),
        flow.accepted("o-sell", "acc_a2", "sell", "100", "100.00", start_ms + 10),
        flow.trade(("o-buy", "acc_a1"), ("o-sell", "acc_a2"), "100", "100.00", "sell", start_ms + 10),
    ]


def kinesis_event(records: list[Any], *, commands: bool = False, first: int = 1) -> dict[str, Any]:
    """One Kinesis record per payload (bytes as they are; else JSON)."""
    out = []
    for i, payload in enumerate(records, start=first):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        out.append({
            "kinesis": {"partitionKey": "AAPL", "sequenceNumber": f"4959{i:020d}",
                        "data": base64.b64encode(data).decode(), "approximateArrivalTimestamp": 1.0},
            "eventSource": "aws:kinesis", "eventID": f"shardId-000000000000:{i}",
            "eventSourceARN": COMMANDS_ARN if commands else EVENTS_ARN, "awsRegion": "us-east-1",
        })  # fmt: skip
    return {"Records": out}


def read_stream(aws: Any, logical_id: str) -> list[dict[str, Any]]:
    client = boto3.client("kinesis", region_name="us-east-1")
    name = aws.stream_name(logical_id)
    found: list[dict[str, Any]] = []
    for shard in client.list_shards(StreamName=name)["Shards"]:
        iterator = client.get_shard_iterator(StreamName=name, ShardId=shard["ShardId"],
                                             ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        found += [json.loads(r["Data"]) for r in client.get_records(ShardIterator=iterator, Limit=1000)["Records"]]
    return found


def read_queue(aws: Any, logical_id: str) -> list[dict[str, Any]]:
    client = boto3.client("sqs", region_name="us-east-1")
    url = aws.queue_url(logical_id)
    found: list[dict[str, Any]] = []
    while True:
        got = client.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages") or []
        if not got:
            return found
        for message in got:
            found.append(json.loads(message["Body"]))
            client.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def account(aws: Any, account_id: str) -> dict[str, Any]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AccountsTable"))
    return dict(table.get_item(Key={"account_id": account_id})["Item"])


def alert_items(aws: Any) -> list[dict[str, Any]]:
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("SurveillanceAlertsTable"))
    return list(table.scan()["Items"])


def request(app: Any, method: str, resource: str, *, params: dict[str, str] | None = None,
            query: dict[str, str] | None = None, body: Any = None,
            roles: str = "compliance") -> tuple[int, Any]:  # fmt: skip
    """Call a Chalice app as usr_c (inbox acc_c) with ``roles``."""
    event = rest_event(method, resource, path_params=params, query=query, body=body)
    event["requestContext"]["authorizer"].update(user_id="usr_c", accounts="acc_c", scopes="read,trade", roles=roles)
    return call(app, event)
