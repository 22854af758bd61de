"""execution-events -> price alerts: a trade that reaches an armed alert's threshold fires it
(armed -> fired, one conditional write) and puts its notification on the notifications queue.

Redelivery: the conditional write fails for an alert already fired; when it was fired by this
very trade (an earlier attempt that failed before sending), the notification is sent again and
the inbox stores it once (its id is the alert's)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.kinesis_stream_event import KinesisStreamRecord
from nexus_common.batch import ExecutionEventT, OrderedStreamProcessor, decode_execution_events
from nexus_common.events import TradeEvent
from nexus_common.logging import get_logger, with_lambda_context
from nexus_common.settings import lazy, lazy_settings
from nexus_common.sqs import SqsBatchSender

from nexus_notifications.alerts import Alert, alert_notification
from nexus_notifications.repo import AlertsTable
from nexus_notifications.settings import AlertsConsumerSettings

logger = get_logger()
settings = lazy_settings(AlertsConsumerSettings)
processor = OrderedStreamProcessor(logger=logger)
table = lazy(lambda: AlertsTable(settings().alerts_table))
queue = lazy(lambda: SqsBatchSender(settings().notifications_queue_url))


def fire_alerts(events: list[ExecutionEventT], armed: dict[str, list[Alert]], alerts: AlertsTable,
                sender: SqsBatchSender) -> int:  # fmt: skip
    """Fire what the trades of one record reach; ``armed`` caches armed alerts per symbol."""
    fired = 0
    messages: list[dict[str, Any]] = []
    for event in events:
        if not isinstance(event, TradeEvent):
            continue
        if event.symbol not in armed:
            armed[event.symbol] = alerts.armed(event.symbol)
        for alert in list(armed[event.symbol]):
            if not alert.fires_on(event):
                continue
            armed[event.symbol].remove(alert)
            done = alert.fired(event)
            if alerts.fire(done):
                fired += 1
                messages.append(alert_notification(done, event))
                continue
            current = alerts.get(alert.account_id, alert.alert_id)
            if current is not None and current.fired_by == event.event_id:
                messages.append(alert_notification(current, event))  # our own earlier attempt
    if messages:
        sender.send(messages)
    return fired


@with_lambda_context(logger)
def handler(event: dict[str, Any], context: Any) -> PartialItemFailureResponse:
    armed: dict[str, list[Alert]] = {}  # per invocation: the index is read once per symbol

    def record_handler(record: KinesisStreamRecord) -> int:
        return fire_alerts(decode_execution_events(record), armed, table(), queue())

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
