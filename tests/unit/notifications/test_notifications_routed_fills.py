"""Price alerts fire on this venue's trades: a routed order's external fills, and its rest on an
external venue, do not fire them."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import boto3
import pytest
from lambda_events import FakeLambdaContext, kinesis_event, load_event
from nexus_notifications import on_execution_events
from nexus_notifications.alerts import CreateAlert, new_alert
from nexus_notifications.repo import AlertsTable


@pytest.mark.parametrize("fixture", ["routed_fills.json", "routed_working.json"])
def test_external_fills_above_an_alerts_threshold_leave_it_armed(aws: Any, fixture: str) -> None:
    # GIVEN an armed alert above 100 on AAPL
    aws.use_function_env("AlertsFunction")
    alerts = AlertsTable(aws.table_name("AlertsTable"))
    alert = new_alert("acc_1", CreateAlert(symbol="AAPL", type="above", price=Decimal("100")), None,
                      datetime(2026, 1, 5, tzinfo=UTC))  # fmt: skip
    alerts.add(alert)
    # WHEN a routed order's records are delivered: fills at 100.01 and 100.02 on external venues,
    # or a route resting on a venue at 100 (route_working), its fills there and its end
    loaded = load_event(fixture)
    records = loaded["records"] if "records" in loaded else [{"events": loaded["events"]}]
    assert on_execution_events.handler(kinesis_event(*records), FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the alert is still armed and nothing was put on the notifications queue
    assert [a.alert_id for a in alerts.armed("AAPL")] == [alert.alert_id]
    queue_url = aws.queue_url("NotificationsQueue")
    assert "Messages" not in boto3.client("sqs", region_name="us-east-1").receive_message(QueueUrl=queue_url)
