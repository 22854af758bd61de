"""``nexus venues add|list|disable|enable`` on the venues table (moto, from the template), and
the venue-reports consumer's Lambda handler: each report applied once, an undecodable record
skipped, a failed write reported with everything after it."""

from __future__ import annotations

import base64
import json
from decimal import Decimal
from typing import Any

import pytest
from typer.testing import CliRunner

D = Decimal


@pytest.fixture
def cli(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The CLI acting on the moto platform (the connection itself is the platform module's)."""
    from nexus import platform as target_platform
    from nexus.cli import app

    target = target_platform.Target(stage="test", endpoint_url=None, local=True)
    monkeypatch.setattr(target_platform, "connect", lambda *a, **k: target)
    monkeypatch.setattr(target_platform, "tables", lambda target=None: aws.table_name)
    runner = CliRunner()
    return lambda *args: runner.invoke(app, ["venues", *args])


def test_venues_are_added_listed_disabled_and_enabled(cli: Any) -> None:
    # WHEN two venues are added
    added = cli("add", "--name", "Alpha", "--mic", "XALP", "--taker-fee", "0.003", "--maker-rebate", "0.002")
    assert added.exit_code == 0, added.output
    assert cli("add", "--name", "NexusTrade", "--mic", "NXTR", "--kind", "internal").exit_code == 0
    # THEN they are listed, with their fees exact
    rows = [json.loads(line) for line in cli("list").output.splitlines()]
    assert [r["name"] for r in rows] == ["Alpha", "NexusTrade"]
    assert rows[0]["fees"] == {"taker_fee": "0.003", "maker_rebate": "0.002"} and rows[0]["enabled"] is True
    # WHEN Alpha is disabled THEN the table says so; enabled again, it is back
    assert json.loads(cli("disable", "Alpha").output)["enabled"] is False
    assert [r["enabled"] for r in map(json.loads, cli("list").output.splitlines())] == [False, True]
    assert json.loads(cli("enable", "Alpha").output)["enabled"] is True


@pytest.mark.parametrize(
    ("args", "code", "field"),
    [
        (["add", "--name", "Bad", "--mic", "xx"], "invalid_venue", "mic"),
        (["add", "--name", "Bad", "--mic", "XBAD", "--taker-fee", "0.01"], "invalid_venue", "fees.taker_fee"),
        (["add", "--name", "Bad", "--mic", "XBAD", "--kind", "dark"], "invalid_venue", "kind"),
        (["add", "--name", "Bad", "--mic", "XBAD", "--taker-fee", "lots"], "invalid_field", "taker_fee"),
        (["disable", "Nowhere"], "unknown_venue", "name"),
    ],
)
def test_bad_venues_are_refused_with_exit_2_and_nothing_written(cli: Any, args: list[str], code: str,
                                                                  field: str) -> None:
    result = cli(*args)
    assert result.exit_code == 2
    error = json.loads(result.output.strip().splitlines()[-1])["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert cli("list").output == ""


def test_a_venue_name_is_added_once(cli: Any) -> None:
    assert cli("add", "--name", "Alpha", "--mic", "XALP").exit_code == 0
    again = cli("add", "--name", "Alpha", "--mic", "XALQ")
    assert again.exit_code == 2 and "venue_exists" in again.output
    assert json.loads(cli("list").output)["mic"] == "XALP"


def _report(report_id: str, filled: str = "100", quantity: str | None = "100") -> dict[str, Any]:
    return {"report_id": report_id, "venue": "Alpha", "order_id": "p-1-1-1", "parent_id": "p-1", "symbol": "MSFT",
            "side": "buy", "status": "filled" if filled == quantity else "partially_filled",
            "fills": [{"price": "300.01", "quantity": filled, "liquidity": "taker", "fee": "0.3"}],
            "cum_quantity": filled, "leaves_quantity": "0", "latency_us": 400, "ts": "2026-11-02T15:30:00Z",
            "reason": None, "order_quantity": quantity, "nbbo_bid": "299.99", "nbbo_ask": "300.01"}


def _event(*payloads: Any) -> dict[str, Any]:
    records = []
    for i, payload in enumerate(payloads, start=1):
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        records.append({"kinesis": {"sequenceNumber": f"{i:05d}", "partitionKey": "Alpha",
                                    "data": base64.b64encode(data).decode()}})
    return {"Records": records}


def test_the_consumer_applies_each_report_once_and_skips_what_cannot_be_decoded(aws: Any) -> None:
    from nexus_routing import on_venue_reports
    from nexus_routing.repo import DynamoVenueStats

    aws.use_function_env("VenueStatsConsumerFunction")
    # WHEN a batch with two reports and an undecodable record arrives, then is delivered again
    batch = _event(_report("Alpha:1"), b"not json", _report("Alpha:2", quantity="100"))
    assert on_venue_reports.handler(batch, None) == {"batchItemFailures": []}
    assert on_venue_reports.handler(batch, None) == {"batchItemFailures": []}
    # THEN the counters hold the two reports once: 200 sent, 200 filled, two orders
    (row,) = DynamoVenueStats(aws.table_name("VenueStatsTable")).rows("MSFT#buy#100-499")
    assert (row["venue"], row["sent"], row["filled"], row["orders"]) == ("Alpha", 200, 200, 2)
    # all-in cost: at the offer, half the 2-cent spread from the mid, plus 0.003 a share of fees
    assert D(str(row["cost_total"])) / D(str(row["cost_shares"])) == D("0.013")


def test_a_failed_write_is_reported_with_the_records_after_it(aws: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus_routing import on_venue_reports

    aws.use_function_env("VenueStatsConsumerFunction")
    monkeypatch.setenv("VENUE_STATS_TABLE", "nexus-test-no-such-table")
    batch = _event(_report("Alpha:1"), _report("Alpha:2"))
    assert on_venue_reports.handler(batch, None) == {
        "batchItemFailures": [{"itemIdentifier": "00001"}, {"itemIdentifier": "00002"}]}
