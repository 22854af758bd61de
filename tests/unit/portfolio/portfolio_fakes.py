"""The money world of the portfolio tests, under moto with the tables the template declares: the
orders API (pre-trade risk), the risk and portfolio execution-events handlers, the portfolio API
and the settlement run, with the environment the template gives each function. Engine events are
built here and fed to both handlers as their Kinesis batches."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import boto3
from lambda_events import FakeLambdaContext, call, kinesis_event, rest_event
from nexus_common.events import COMMAND_ADAPTER
from nexus_common.fees import FeeSchedule
from nexus_common.instruments import DEMO_INSTRUMENTS
from nexus_marketdata.repo import put_instruments
from nexus_orders import api as orders_api
from nexus_portfolio import api as portfolio_api
from nexus_portfolio import on_execution_events as portfolio_consumer
from nexus_risk import on_execution_events as risk_consumer

D = Decimal
FEES = FeeSchedule.from_bps(D(1), D(3))  # the template's MakerFeeBps / TakerFeeBps
TS = "2026-03-05T15:00:00.000000Z"  # a Thursday: settles Monday 2026-03-09


class Money:
    def __init__(self, aws: Any) -> None:
        self.aws = aws
        for function in ("OrdersApiFunction", "RiskConsumerFunction", "PortfolioConsumerFunction",
                         "PortfolioApiFunction", "SettlementFunction"):
            self.env = {**getattr(self, "env", {}), **aws.use_function_env(function)}
        put_instruments(self.env["INSTRUMENTS_TABLE"], DEMO_INSTRUMENTS)
        self.ddb = boto3.resource("dynamodb", region_name="us-east-1")
        self.kinesis = boto3.client("kinesis", region_name="us-east-1")
        self.seq = 0

    def table(self, env: str) -> Any:
        return self.ddb.Table(self.env[env])

    def account(self, account_id: str, cash: str, **extra: Any) -> None:
        self.table("ACCOUNTS_TABLE").put_item(
            Item={"account_id": account_id, "cash": D(cash), "currency": "USD", "status": "active", **extra}
        )

    def item(self, account_id: str) -> dict[str, Any]:
        return dict(self.table("ACCOUNTS_TABLE").get_item(Key={"account_id": account_id})["Item"])

    def last_trade(self, symbol: str, price: str) -> None:
        self.table("TRADES_TABLE").put_item(Item={"symbol": symbol, "seq": 0, "price": D(price), "quantity": D(1)})

    def post(self, account: str, **body: Any) -> tuple[int, Any]:
        return call(orders_api.app, rest_event("POST", "/v1/orders", body=body, account_id=account))

    def get(self, path: str, account: str, query: dict[str, str] | None = None) -> tuple[int, Any]:
        return call(portfolio_api.app, rest_event("GET", path, account_id=account, query=query))

    def orders(self) -> list[dict[str, Any]]:
        return list(self.table("ORDERS_TABLE").scan()["Items"])

    def commands(self) -> list[Any]:
        stream = self.env["ORDER_COMMANDS_STREAM"]
        shard = self.kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        iterator = self.kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records = self.kinesis.get_records(ShardIterator=iterator)["Records"]
        return [COMMAND_ADAPTER.validate_json(r["Data"]) for r in records]

    def event(self, kind: str, seq: int | None = None, **fields: Any) -> dict[str, Any]:
        if seq is None:
            self.seq += 1
            seq = self.seq
        return {"event_id": f"AAPL-{seq}", "type": kind, "version": 1, "ts": TS, "correlation_id": "c",
                "symbol": "AAPL", "seq": seq, "epoch": 0, **fields}

    def trade(self, maker: tuple[str, str], taker: tuple[str, str], price: str, qty: str, aggressor: str,
              maker_left: str, taker_left: str, seq: int | None = None) -> dict[str, Any]:
        return self.event(
            "trade", seq, price=price, quantity=qty, aggressor_side=aggressor,
            maker_order_id=maker[1], maker_account_id=maker[0], taker_order_id=taker[1], taker_account_id=taker[0],
            maker_filled_quantity=qty, maker_filled_notional="0", maker_remaining_quantity=maker_left,
            taker_filled_quantity=qty, taker_filled_notional="0", taker_remaining_quantity=taker_left,
        )

    def consume(self, *events: dict[str, Any]) -> None:
        for handler in (risk_consumer.handler, portfolio_consumer.handler):
            answer = handler(kinesis_event(*({"events": [e]} for e in events)), FakeLambdaContext())
            assert answer == {"batchItemFailures": []}, answer
