"""The application layer of notifications: deliver a notification to the inbox and the account's
WebSocket connections, and fire the price alerts a trade reaches.

``deliver``: exactly once in the inbox (one conditional put per notification id, so a redelivered
message changes nothing); the push follows the put, and a redelivery of a notification whose push
did not happen (``pushed_at`` missing) pushes it then. When the account has no subscriber there is
nothing to push: the put stores the notification as pushed, one write instead of two.

``create_alert``: an alert on an instrument that exists, within the cap on the alerts a user keeps
over the accounts its credential acts for; a ``percent_move`` alert moves from the symbol's last
trade.

``fire_alerts``: a trade that reaches an armed alert's threshold fires it (armed -> fired, one
conditional write) and its notification is sent. When the write is refused because this very
trade already fired the alert (an earlier attempt that failed before sending), the notification
is sent again and the inbox stores it once (its id is the alert's).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from nexus_common.errors import Conflict, ValidationFailed
from nexus_common.events import TradeEvent, iso, utc_now
from nexus_common.instrument_store import InstrumentLookup
from nexus_common.push import Publisher

from nexus_notifications.alerts import Alert, CreateAlert, alert_notification, new_alert
from nexus_notifications.domain import Notification, inbox_item, inbox_view


class InboxStore(Protocol):
    def add(self, item: dict[str, Any]) -> bool: ...

    def get(self, account_id: str, notification_id: str) -> dict[str, Any] | None: ...

    def mark_pushed(self, account_id: str, notification_id: str, now: datetime) -> None: ...


class AlertStore(Protocol):
    def armed(self, symbol: str) -> list[Alert]: ...

    def fire(self, fired: Alert) -> bool: ...

    def get(self, account_id: str, alert_id: str) -> Alert | None: ...


class AlertBook(Protocol):
    def count(self, account_ids: Iterable[str]) -> int: ...

    def add(self, alert: Alert) -> None: ...


class LastPrices(Protocol):
    def last(self, symbol: str) -> Decimal | None: ...


class NotificationSender(Protocol):
    """The notifications queue (``nexus_common.sqs.SqsBatchSender``)."""

    def send(self, messages: list[dict[str, Any]]) -> None: ...


def channel_of(notification: Notification) -> str:
    """The WebSocket channel a notification is pushed on: its account's."""
    return f"notifications:{notification.account_id}"


def deliver(
    notification: Notification,
    publisher: Publisher,
    inbox: InboxStore,
    clock: Callable[[], datetime] = utc_now,
) -> bool:
    """Store and push one notification; False when it was already delivered (a redelivery)."""
    channel = channel_of(notification)
    now = clock()
    item = inbox_item(notification, now)
    if not publisher.subscribers(channel):
        return inbox.add({**item, "pushed_at": iso(now)})  # nobody to push to: stored is delivered
    if not inbox.add(item):
        stored = inbox.get(notification.account_id, notification.notification_id)
        if stored is None or stored.get("pushed_at"):
            return False
        item = stored
    publisher.publish(channel, [{"type": "notifications", "notification": inbox_view(item)}])
    inbox.mark_pushed(notification.account_id, notification.notification_id, clock())
    return True


def fire_alerts(events: Sequence[Any], armed: dict[str, list[Alert]], alerts: AlertStore,
                sender: NotificationSender) -> int:  # fmt: skip
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


def create_alert(
    account_id: str,
    user_accounts: Iterable[str],
    body: CreateAlert,
    instruments: InstrumentLookup,
    alerts: AlertBook,
    prices: LastPrices,
    cap: int,
    now: datetime,
) -> Alert:
    """Arm a new alert of the account (400 unknown symbol, 409 ``limit_reached``)."""
    if instruments.get(body.symbol) is None:
        raise ValidationFailed("unknown_symbol", f"no instrument {body.symbol}", "symbol")
    if alerts.count(user_accounts) >= cap:
        raise Conflict("limit_reached", f"a user keeps at most {cap} alerts: delete some first")
    reference = prices.last(body.symbol) if body.type == "percent_move" else None
    alert = new_alert(account_id, body, reference, now)
    alerts.add(alert)
    return alert
