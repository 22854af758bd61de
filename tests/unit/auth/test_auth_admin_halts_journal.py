"""An admin halt or resume is a command on ``order-commands`` (the engine's journal), beside the
instruments table's status that order entry pre-checks."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import boto3
from conftest import Edge, register_and_login
from nexus_auth import admin_api, api
from nexus_common.events import COMMAND_ADAPTER, HaltCommand, ResumeCommand
from nexus_common.instruments import Instrument
from nexus_matching.engine import MatchingEngine


def _journal(aws: Any) -> list[tuple[str, dict[str, Any]]]:
    kinesis = boto3.client("kinesis", region_name="us-east-1")
    stream = aws.stream_name("OrderCommandsStream")
    records: list[tuple[str, dict[str, Any]]] = []
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        records += [
            (r["PartitionKey"], json.loads(r["Data"])) for r in kinesis.get_records(ShardIterator=iterator)["Records"]
        ]
    return records


def test_a_halt_and_a_resume_go_on_the_engine_journal_keyed_by_symbol(edge: Edge, aws: Any) -> None:
    # GIVEN a listed symbol and an admin
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("InstrumentsTable"))
    table.put_item(Item={"symbol": "AAPL", "status": "active", "tick_size": "0.01", "lot_size": "1"})
    admin = register_and_login(edge, "root@example.com")
    api.service().change_role(admin["user_id"], "admin", True, "operator")
    token = admin["access_token"]
    # WHEN the admin halts it, then resumes it
    for action, reason in (("halt", "news pending"), ("resume", "news out")):
        answer = edge.call(admin_api.app, "POST", f"/v1/admin/instruments/{{symbol}}/{action}", credential=token,
                           path_params={"symbol": "AAPL"}, body={"reason": reason})  # fmt: skip
        assert answer.status == 200, answer.body
    # THEN the table says active again, and the journal holds a halt then a resume, keyed AAPL
    assert table.get_item(Key={"symbol": "AAPL"})["Item"]["status"] == "active"
    journal = _journal(aws)
    assert [key for key, _ in journal] == ["AAPL", "AAPL"]
    commands = [COMMAND_ADAPTER.validate_python(raw) for _, raw in journal]
    assert isinstance(commands[0], HaltCommand) and commands[0].reason == "news pending"
    assert isinstance(commands[1], ResumeCommand) and commands[1].symbol == "AAPL"
    # AND the engine, fed the journal with an order in between, refuses that order
    engine = MatchingEngine({"AAPL": Instrument(symbol="AAPL", tick_size=Decimal("0.01"), lot_size=Decimal("1"))})
    order = {"type": "new", "command_id": "c1", "order_id": "o1", "account_id": "a", "symbol": "AAPL", "side": "buy",
             "order_type": "limit", "price": "10.00", "quantity": "1", "ts": journal[0][1]["ts"]}  # fmt: skip
    engine.process(journal[0][1])
    assert [e["reason"] for e in engine.process(order)] == ["symbol_halted"]
    engine.process(journal[1][1])
    assert [e["type"] for e in engine.process({**order, "order_id": "o2"})] == ["accepted", "book"]


def test_a_halt_of_an_unknown_symbol_puts_nothing_on_the_journal(edge: Edge, aws: Any) -> None:
    # GIVEN an admin, WHEN halting a symbol that is not listed
    admin = register_and_login(edge, "root2@example.com")
    api.service().change_role(admin["user_id"], "admin", True, "operator")
    answer = edge.call(admin_api.app, "POST", "/v1/admin/instruments/{symbol}/halt", credential=admin["access_token"],
                       path_params={"symbol": "NOPE"}, body={"reason": "x"})  # fmt: skip
    # THEN 404, and the engine's journal is untouched
    assert answer.status == 404 and answer.body["error"]["code"] == "unknown_symbol"
    assert _journal(aws) == []
