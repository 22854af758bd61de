"""A poison record on execution-events, through the template's own mappings of the risk and
portfolio consumers (real worker processes, real pollers, a real moto server): it goes to the
DLQ after the template's retries, and the records around it, in the same batch, are applied."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from helpers import eventually
from template_functions import TemplateFunctions

CONSUMERS = ("RiskConsumerFunction", "PortfolioConsumerFunction")
TS = "2026-03-05T15:00:00.000000Z"


class PostTrade(TemplateFunctions):
    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint, "poison", CONSUMERS)
        self.dead: list[dict[str, Any]] = []

    def start(self) -> None:
        self.start_streams()

    def put(self, payloads: list[bytes]) -> list[str]:
        kinesis = self.clients.client("kinesis")
        stream = self.ref("ExecutionEventsStream")
        return [
            kinesis.put_record(StreamName=stream, Data=data, PartitionKey="AAPL")["SequenceNumber"]
            for data in payloads
        ]

    def dlq(self) -> list[dict[str, Any]]:
        """Every message received from the DLQ so far (a received message is hidden for a while)."""
        sqs = self.clients.client("sqs")
        answer = sqs.receive_message(QueueUrl=self.ref("ExecutionEventsDLQ"), MaxNumberOfMessages=10)
        self.dead.extend(json.loads(m["Body"]) for m in answer.get("Messages", []))
        return list(self.dead)



@pytest.fixture
def posttrade(moto_endpoint: str) -> Iterator[PostTrade]:
    world = PostTrade(moto_endpoint)
    yield world
    world.close()


def trade(seq: int, quantity: str) -> bytes:
    event = {
        "event_id": f"AAPL-{seq}", "type": "trade", "version": 1, "ts": TS, "correlation_id": "c",
        "symbol": "AAPL", "seq": seq, "epoch": 0, "price": "100.00", "quantity": quantity,
        "aggressor_side": "buy", "maker_order_id": f"s{seq}", "maker_account_id": "acc_seller",
        "taker_order_id": f"b{seq}", "taker_account_id": "acc_buyer",
        "maker_filled_quantity": quantity, "maker_filled_notional": "0", "maker_remaining_quantity": "0",
        "taker_filled_quantity": quantity, "taker_filled_notional": "0", "taker_remaining_quantity": "0",
    }
    return json.dumps({"events": [event]}).encode()


def test_a_poison_record_goes_to_the_dlq_after_the_retries_and_the_rest_is_applied(posttrade: PostTrade) -> None:
    # GIVEN two funded accounts and, on execution-events, a trade, a poison record, another trade
    accounts = posttrade.dynamodb.Table(posttrade.ref("AccountsTable"))
    for account in ("acc_buyer", "acc_seller"):
        accounts.put_item(Item={"account_id": account, "cash": Decimal("10000.00"), "status": "active"})
    sequence = posttrade.put([trade(1, "3"), b"\x00 not an event", trade(2, "4")])
    # WHEN the template's mappings of the risk and portfolio consumers run
    posttrade.start()
    # THEN each consumer's batch ends on the DLQ after 1 + MaximumRetryAttempts (5) invocations,
    # described from the poison record on
    failures = eventually(posttrade.dlq, lambda found: len(found) >= 2, timeout=120)
    assert len(failures) == 2
    functions = sorted(f["requestContext"]["functionArn"].rsplit("-", 1)[-1] for f in failures)
    assert functions == ["PortfolioConsumerFunction", "RiskConsumerFunction"]
    for failure in failures:
        assert failure["requestContext"]["condition"] == "RetryAttemptsExhausted"
        assert failure["requestContext"]["approximateInvokeCount"] == 6
        assert failure["KinesisBatchInfo"]["startSequenceNumber"] == sequence[1]
    # AND both trades (the one after the poison record too) were applied once, by both consumers
    buyer = accounts.get_item(Key={"account_id": "acc_buyer"}, ConsistentRead=True)["Item"]
    assert buyer["pos#AAPL"] == 7 and buyer["seq#AAPL"] == 2
    assert buyer["cash"] == Decimal("10000.00") - Decimal("700.00") - Decimal("0.09") - Decimal("0.12")
    positions = posttrade.dynamodb.Table(posttrade.ref("PositionsTable"))
    position = positions.get_item(Key={"account_id": "acc_buyer", "symbol": "AAPL"}, ConsistentRead=True)["Item"]
    assert (position["quantity"], position["last_seq"]) == (7, 2)
    ledger = posttrade.dynamodb.Table(posttrade.ref("LedgerTable")).scan(ConsistentRead=True)["Items"]
    assert sorted(item["entry_id"] for item in ledger) == [
        "fill:AAPL-1:maker", "fill:AAPL-1:taker", "fill:AAPL-2:maker", "fill:AAPL-2:taker",
    ]
