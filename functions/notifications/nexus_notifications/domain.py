"""A notification: what the orders consumer sends, what the inbox stores. No boto3 here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nexus_common.events import iso
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field


class Notification(BaseModel):
    """Body of a message on the notifications queue (fields beyond these are kept as-is)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    notification_id: str = Field(min_length=1, max_length=256)
    account_id: str = Field(min_length=1, max_length=128)
    kind: str = Field(min_length=1, max_length=64)
    ts: AwareDatetime


def inbox_item(notification: Notification, received_at: datetime) -> dict[str, Any]:
    """Item of ``NotificationsTable`` (pk ``account_id``, sk ``notification_id``)."""
    item: dict[str, Any] = dict(notification.model_extra or {})
    item.update(
        notification_id=notification.notification_id,
        account_id=notification.account_id,
        kind=notification.kind,
        ts=iso(notification.ts),
        received_at=iso(received_at),
        sort_key=sort_key(notification),
    )
    return item


def sort_key(notification: Notification) -> str:
    """Sort key of the inbox's ``by-time`` index: newest first when read backwards."""
    return f"{iso(notification.ts)}#{notification.notification_id}"


def inbox_view(item: dict[str, Any]) -> dict[str, Any]:
    """What ``GET /v1/notifications`` shows of an inbox item."""
    return {k: v for k, v in item.items() if k not in ("sort_key", "pushed_at")}
