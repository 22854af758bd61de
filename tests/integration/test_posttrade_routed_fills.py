"""A routed order's venue fills on execution-events, through the template's own mapping of the
portfolio consumer (a real worker process, a real poller, a real moto server): booked once as
the account's fills, with the venue's fee and rebate, also when the engine's step is delivered
twice, and in sequence with the engine's own trades."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from helpers import eventually
from template_functions import TemplateFunctions, engine_event


class PortfolioConsumer(TemplateFunctions):
    def __init__(self, endpoint: str) -> None:
        super().__init__(endpoint, "routed", ("PortfolioConsumerFunction",))

    def put(self, *records: list[dict[str, Any]]) -> None:
        kinesis = self.clients.client("kinesis")
        for events in records:
            data = json.dumps({"events": events}).encode()
            kinesis.put_record(StreamName=self.ref("ExecutionEventsStream"), Data=data, PartitionKey="AAPL")

    def position(self) -> dict[str, Any]:
        key = {"account_id": "acc_r", "symbol": "AAPL"}
        return dict(self.table("PositionsTable").get_item(Key=key, ConsistentRead=True).get("Item") or {})


@pytest.fixture
def consumer(moto_endpoint: str) -> Iterator[PortfolioConsumer]:
    world = PortfolioConsumer(moto_endpoint)
    yield world
    world.close()


def venue_fill(seq: int, qty: str, price: str, fee: str, liquidity: str, venue: str, filled: str) -> dict[str, Any]:
    return engine_event(seq, "venue_fill", order_id="r1", account_id="acc_r", side="buy", child_id=f"r1-c{seq}",
                    venue=venue, mic=f"X{venue[:3]}", price=price, quantity=qty, liquidity=liquidity, fee=fee,
                    report_id=f"rep-{seq}", filled_quantity=filled, filled_notional="0",
                    remaining_quantity=str(10 - int(filled)))


ROUTED_STEP = [  # one engine step: the routed buy of 10 filled on two venues, then its end
    venue_fill(1, "6", "150.00", "0.27", "taker", "ALPHA", "6"),
    venue_fill(2, "4", "150.10", "-0.08", "maker", "BETA", "10"),
    engine_event(3, "route_ended", order_id="r1", account_id="acc_r", side="buy", quantity="10", filled_quantity="10",
             filled_notional="1500.40", remaining_quantity="0", reason="filled"),
]
TRADE = engine_event(  # then the account takes 1 on our own book
    4, "trade", price="151.00", quantity="1", aggressor_side="buy", maker_order_id="s4", maker_account_id="acc_s",
    taker_order_id="b4", taker_account_id="acc_r", maker_filled_quantity="1", maker_filled_notional="151.00",
    maker_remaining_quantity="0", taker_filled_quantity="1", taker_filled_notional="151.00",
    taker_remaining_quantity="0",
)


def test_a_routed_step_delivered_twice_is_booked_once_in_sequence_with_the_engines_trades(
    consumer: PortfolioConsumer,
) -> None:
    # GIVEN on execution-events: the routed step, the same step again (a redelivery), then a trade
    consumer.put(ROUTED_STEP, ROUTED_STEP, [TRADE])
    # WHEN the template's mapping of the portfolio consumer runs
    consumer.start_streams()
    # THEN the account's position holds the 10 routed shares and the 1 traded, once
    position = eventually(consumer.position, lambda p: p.get("last_seq") == 4, timeout=60)
    assert (position["quantity"], position["last_seq"]) == (11, 4)
    assert position["cost"] == Decimal("1500.40") + Decimal("151.00")
    # fees: the venues' (0.27, a 0.08 rebate) and the schedule's taker 3 bp of 151.00
    assert position["fees"] == Decimal("0.27") - Decimal("0.08") + Decimal("0.05")
    # AND one fill entry per fill, the routed ones on the account's side only, naming the venue
    ledger = consumer.table("LedgerTable").scan(ConsistentRead=True)["Items"]
    memos = {item["entry_id"]: item["memo"] for item in ledger}
    assert memos == {
        "fill:AAPL-1:taker": "buy 6 AAPL @ 150 (taker) on ALPHA [XALP]",
        "fill:AAPL-2:maker": "buy 4 AAPL @ 150.1 (maker) on BETA [XBET]",
        "fill:AAPL-4:maker": "sell 1 AAPL @ 151 (maker)",
        "fill:AAPL-4:taker": "buy 1 AAPL @ 151 (taker)",
    }
    rebate = next(item for item in ledger if item["entry_id"] == "fill:AAPL-2:maker")
    assert {(leg["book"], leg["account"], leg["amount"]) for leg in rebate["legs"] if leg["asset"] == "USD"} == {
        ("acc_r", "pending_cash", Decimal("-600.40")), ("house", "clearing", Decimal("600.40")),
        ("acc_r", "cash", Decimal("0.08")), ("house", "fees", Decimal("-0.08")),
    }
    # AND one obligation per fill of the account, due on T+2
    obligations = consumer.table("SettlementsTable").scan(ConsistentRead=True)["Items"]
    assert sorted(o["item_id"] for o in obligations if o["account_id"] == "acc_r") == [
        "OBL#2026-03-09#AAPL#AAPL-1#taker", "OBL#2026-03-09#AAPL#AAPL-2#maker", "OBL#2026-03-09#AAPL#AAPL-4#taker",
    ]
