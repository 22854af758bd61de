"""WebSocket push: the connections table and the API Gateway Management API.

The connections table (``ConnectionsTable``, pk ``pk`` / sk ``sk``) holds three kinds of item:

* ``CONN#<connection id>`` / ``META``: who is connected (account, accounts, user), the channels
  it subscribed to (a string set), ``expires_at`` (TTL, in case ``$disconnect`` never comes);
* ``SUB#<channel>`` / ``<connection id>``: one item per subscriber of a channel, so the
  subscribers of a channel are one ``Query`` (no scan, no index);
* ``SEQ#<channel>`` / ``SEQ``: the channel's message counter ``seq`` and its watermarks (the
  last engine ``seq`` of each symbol published on it), so a redelivered event publishes nothing
  and every message of a channel has the next number: a client that sees a gap has missed one;
  and ``subs``, how many ``SUB#`` items the channel has. It is counted up *before* a subscription
  is written and down *after* one is deleted (and only when one was), so it is never below the
  true number: at worst (a crash between the two writes, a subscription the table's TTL expired)
  it is above it, which costs a ``Query`` that finds nobody, never a missed message.

``Publisher.publish`` numbers a channel's messages with one conditional ``UpdateItem`` and posts
them to every subscriber through the Management API (``PostToConnection``); a connection that is
gone (410) is removed with its subscriptions. ``Publisher.prepare`` reads the ``subs`` of every
channel an invocation will publish on with one ``BatchGetItem``: a channel nobody subscribed to
costs no ``Query``. (A channel with no ``SEQ#`` item has never been subscribed to.)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from nexus_common.dynamo import LazyTable, conditional_answer, paginate
from nexus_common.dynamo_batch import batch_get
from nexus_common.jsonutil import dumps

META: Final = "META"
CONNECTION_TTL_SECONDS: Final = 2 * 60 * 60  # API Gateway closes a WebSocket after 2 h


def conn_pk(connection_id: str) -> str:
    return f"CONN#{connection_id}"


def sub_pk(channel: str) -> str:
    return f"SUB#{channel}"


def seq_pk(channel: str) -> str:
    return f"SEQ#{channel}"


@dataclass(frozen=True)
class Connection:
    """One WebSocket connection and the identity its ``$connect`` was authorized with."""

    connection_id: str
    account_id: str
    accounts: tuple[str, ...] = ()
    user_id: str | None = None
    channels: frozenset[str] = field(default_factory=frozenset)

    def may_read(self, account_id: str) -> bool:
        return account_id == self.account_id or account_id in self.accounts


class ConnectionStore(LazyTable):
    """Data access over the connections table (see module docstring)."""

    def add(self, connection: Connection, now: datetime) -> None:
        item: dict[str, Any] = {
            "pk": conn_pk(connection.connection_id),
            "sk": META,
            "connection_id": connection.connection_id,
            "account_id": connection.account_id,
            "accounts": ",".join(connection.accounts),
            "connected_at": now.isoformat(),
            "expires_at": int(now.timestamp()) + CONNECTION_TTL_SECONDS,
        }
        if connection.user_id:
            item["user_id"] = connection.user_id
        self.table.put_item(Item=item)

    def get(self, connection_id: str) -> Connection | None:
        item = self.table.get_item(Key={"pk": conn_pk(connection_id), "sk": META}, ConsistentRead=True).get("Item")
        if not item:
            return None
        accounts = tuple(a for a in str(item.get("accounts", "")).split(",") if a)
        return Connection(
            connection_id=connection_id,
            account_id=str(item["account_id"]),
            accounts=accounts,
            user_id=str(item["user_id"]) if item.get("user_id") else None,
            channels=frozenset(str(c) for c in item.get("channels", set())),
        )

    def subscribe(
        self, connection_id: str, channel: str, expires_at: int, attributes: Mapping[str, str] | None = None
    ) -> None:
        """Subscribe (again: the subscription's ``expires_at`` and ``attributes`` are renewed)."""
        self._count(channel, 1)  # before the item: the count is never below the subscriptions
        item = {"pk": sub_pk(channel), "sk": connection_id, "connection_id": connection_id, "expires_at": expires_at,
                **(attributes or {})}  # fmt: skip
        if self.table.put_item(Item=item, ReturnValues="ALL_OLD").get("Attributes"):
            self._count(channel, -1)  # it was subscribed already: counted once
        self.table.update_item(
            Key={"pk": conn_pk(connection_id), "sk": META},
            UpdateExpression="ADD channels :c",
            ExpressionAttributeValues={":c": {channel}},
        )

    def unsubscribe(self, connection_id: str, channel: str) -> None:
        self._delete_subscription(connection_id, channel)
        self.table.update_item(
            Key={"pk": conn_pk(connection_id), "sk": META},
            UpdateExpression="DELETE channels :c",
            ExpressionAttributeValues={":c": {channel}},
        )

    def remove(self, connection_id: str, channels: Iterable[str] = ()) -> None:
        """Forget a connection and every subscription it had, and its subscriptions to
        ``channels`` even if its own item is gone already (idempotent)."""
        connection = self.get(connection_id)
        subscribed = set(channels) | set(connection.channels if connection else ())
        for channel in sorted(subscribed):
            self._delete_subscription(connection_id, channel)
        self.table.delete_item(Key={"pk": conn_pk(connection_id), "sk": META})

    def _delete_subscription(self, connection_id: str, channel: str) -> None:
        gone = self.table.delete_item(Key={"pk": sub_pk(channel), "sk": connection_id}, ReturnValues="ALL_OLD")
        if gone.get("Attributes"):
            self._count(channel, -1)  # after the item, and only for one that was there

    def _count(self, channel: str, delta: int) -> None:
        self.table.update_item(
            Key={"pk": seq_pk(channel), "sk": "SEQ"},
            UpdateExpression="ADD subs :d",
            ExpressionAttributeValues={":d": delta},
        )

    def subscriber_counts(self, channels: Iterable[str]) -> dict[str, int | None]:
        """Each channel's ``subs`` (0 for a channel never subscribed to; None when its ``SEQ#``
        item predates the count), with consistent ``BatchGetItem`` calls."""
        wanted = sorted(set(channels))
        keys = [{"pk": seq_pk(channel), "sk": "SEQ"} for channel in wanted]
        items = batch_get(self.table, keys, ConsistentRead=True, ProjectionExpression="pk, subs") if keys else []
        found = {str(item["pk"]): item.get("subs") for item in items}
        counts: dict[str, int | None] = {}
        for channel in wanted:
            subs = found.get(seq_pk(channel), 0)  # no item: never subscribed to
            counts[channel] = None if subs is None else int(subs)
        return counts

    def subscribers(self, channel: str) -> list[str]:
        items = paginate(
            self.table.query,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": sub_pk(channel)},
            ProjectionExpression="sk",
        )
        return [str(item["sk"]) for item in items]

    def current_seq(self, channel: str) -> int:
        item = self.table.get_item(Key={"pk": seq_pk(channel), "sk": "SEQ"}, ConsistentRead=True).get("Item")
        return int(item.get("seq", 0)) if item else 0

    def reserve_seqs(self, channel: str, count: int, watermark: tuple[str, int] | None = None) -> int | None:
        """Take ``count`` sequence numbers of ``channel``; the first one, or None when the
        watermark ``(name, value)`` is already at or past ``value`` (a redelivery)."""
        names: dict[str, str] = {"#seq": "seq"}
        values: dict[str, Any] = {":n": count}
        update = "ADD #seq :n"
        kwargs: dict[str, Any] = {}
        if watermark is not None:
            names["#w"] = f"w#{watermark[0]}"
            values[":w"] = watermark[1]
            update += " SET #w = :w"
            kwargs["ConditionExpression"] = "attribute_not_exists(#w) OR #w < :w"
        answer = conditional_answer(
            self.table.update_item,
            Key={"pk": seq_pk(channel), "sk": "SEQ"},
            UpdateExpression=update,
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="UPDATED_NEW",
            **kwargs,
        )
        if answer is None:
            return None
        return int(answer["Attributes"]["seq"]) - count + 1


class ManagementApi:
    """``PostToConnection`` through the API Gateway Management API at ``endpoint_url``
    (``https://{api-id}.execute-api.{region}.amazonaws.com/{stage}``, or the local runtime's)."""

    def __init__(self, endpoint_url: str, client: Any = None) -> None:
        self.endpoint_url = endpoint_url
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            import boto3

            from nexus_common.aws import client_config, count_requests, region

            session = boto3.session.Session(region_name=region())
            self._client = session.client(
                "apigatewaymanagementapi", endpoint_url=self.endpoint_url, config=client_config()
            )
            count_requests(self._client)
        return self._client

    def post(self, connection_id: str, data: bytes) -> bool:
        """Send; False when the connection is gone (410)."""
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except Exception as exc:  # a gone connection is dropped; anything else re-raised
            if _is_gone(exc):
                return False
            raise
        return True


def _is_gone(exc: BaseException) -> bool:
    from nexus_common.dynamo import error_code

    return error_code(exc) in ("GoneException", "410") or type(exc).__name__ == "GoneException"


@dataclass
class PublishReport:
    messages: int = 0  # messages numbered
    posts: int = 0  # successful posts
    gone: list[str] = field(default_factory=list)  # connections found gone and removed


class Publisher:
    """Numbers a channel's messages and posts them to its subscribers (see module docstring).

    The subscribers of each channel are read once per ``Publisher`` (one per invocation): a
    subscription made during an invocation is seen by the next one. ``prepare`` first, with the
    invocation's channels, spares a ``Query`` for each channel nobody subscribed to."""

    def __init__(self, store: ConnectionStore, api: ManagementApi) -> None:
        self.store = store
        self.api = api
        self._subscribers: dict[str, list[str]] = {}
        self._gone: set[str] = set()

    def prepare(self, channels: Iterable[str]) -> None:
        """Read how many subscribers each of ``channels`` has, all in one go; those with none
        are not queried for their subscribers (``subscribers`` answers none)."""
        unknown = [channel for channel in set(channels) if channel not in self._subscribers]
        if unknown:
            for channel, count in self.store.subscriber_counts(unknown).items():
                if count is not None and count <= 0:
                    self._subscribers[channel] = []

    def subscribers(self, channel: str) -> list[str]:
        if channel not in self._subscribers:
            self._subscribers[channel] = self.store.subscribers(channel)
        return [c for c in self._subscribers[channel] if c not in self._gone]

    def publish(
        self,
        channel: str,
        messages: Sequence[Mapping[str, Any]],
        watermark: tuple[str, int] | None = None,
        report: PublishReport | None = None,
    ) -> PublishReport:
        report = report or PublishReport()
        if not messages:
            return report
        targets = self.subscribers(channel)
        if not targets:
            return report  # nobody listens: no number is taken, so nobody can see a gap
        first = self.store.reserve_seqs(channel, len(messages), watermark)
        if first is None:
            return report  # already published (a redelivery or a replay)
        frames = [dumps({**m, "channel": channel, "seq": first + i}).encode() for i, m in enumerate(messages)]
        report.messages += len(frames)
        self.post_all(targets, frames, report, channel)
        return report

    def post_all(
        self, targets: Iterable[str], frames: Sequence[bytes], report: PublishReport, channel: str | None = None
    ) -> None:
        for connection_id in targets:
            for frame in frames:
                if connection_id in self._gone:
                    break
                if self.api.post(connection_id, frame):
                    report.posts += 1
                else:
                    self._gone.add(connection_id)
                    self.store.remove(connection_id, (channel,) if channel else ())
                    report.gone.append(connection_id)
