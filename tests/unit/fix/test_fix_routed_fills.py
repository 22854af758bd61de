"""The FIX gateway's execution-events reader skips a routed order's ``venue_fill``,
``route_working`` and ``route_ended`` events (orders entered over FIX are not routed): no error, no report, no change
to the gateway's record of an order."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from fix_world import inline
from lambda_events import load_event
from nexus_fix.fixorders import FixOrder, MemoryFixOrders
from nexus_fix.reports import OrderLocks, Outgoing, ReportRouter, parse_records


@pytest.mark.parametrize("fixture", ["routed_fills.json", "routed_working.json"])
def test_routed_events_are_skipped_and_report_nothing(fixture: str) -> None:
    # GIVEN the engine's records of a routed order (its fills and end, or its rest on an external
    # venue with route_working, a fill there and its end), and a FIX order record under the same id
    loaded = load_event(fixture)
    records = loaded["records"] if "records" in loaded else [{"events": loaded["events"]}]
    store = MemoryFixOrders()
    order = FixOrder(order_id="PARENT", session_id="S", account_id="acc_1", cl_ord_id="c1", symbol="AAPL",
                     side="buy", ord_type="limit", quantity=Decimal(100), price=Decimal("101"),
                     time_in_force="ioc", status="0", leaves_qty=Decimal(100), seq=3)  # fmt: skip
    store.save(order)
    sent: list[Outgoing] = []

    async def session(session_id: str, messages: list[Outgoing]) -> bool:
        sent.extend(messages)
        return True

    # WHEN the gateway reads the record and routes what it parsed
    events = parse_records([json.dumps(record) for record in records])
    reports = asyncio.run(ReportRouter(store, session, OrderLocks(), run=inline).handle(events))
    # THEN nothing is parsed, no report goes out, and the record is as it was
    assert (events, reports, sent) == ([], 0, [])
    assert store.get("PARENT") == order
