"""Private WebSocket channels: the connections table with each connection's credential, and a
``Publisher`` that re-checks it before every push. Shared by every function that pushes a private
channel (the streaming fan-out: orders, fills; the analytics push: ``analytics:<account>``), so a
revoked API key, a logout or a disabled user stops them all within the same bound.

Besides ``nexus_common.push``'s items, the connections table holds:

* ``USER#<user id>`` / ``<connection id>``: one item per open connection of a user, with its
  ``key_id`` / ``session_id`` (never a secret) and ``expires_at`` (TTL): a revocation, a logout or
  a disabled user finds that user's connections with one ``Query``;
* ``SUB#<channel>`` / ``<connection id>`` items also carry ``user_id``, ``key_id``,
  ``session_id``, so a publisher re-checks a private channel's subscribers without another read
  of the connections table.

``Guard`` re-checks a credential (``nexus_common.credentials``, cached for
``CREDENTIAL_CACHE_SECONDS``) and closes a connection whose credential is no longer good:
``DeleteConnection`` through the Management API, then its items are removed (its ``$disconnect``
finds nothing left: idempotent). ``GuardedPublisher`` posts a private channel's messages only to
subscribers whose credential is still good and closes the others instead of serving them.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from nexus_common.credentials import Credential, CredentialCheck
from nexus_common.dynamo import error_code, paginate
from nexus_common.logging import get_logger
from nexus_common.push import (
    CONNECTION_TTL_SECONDS,
    Connection,
    ConnectionStore,
    ManagementApi,
    Publisher,
    sub_pk,
)
from nexus_common.settings import NexusSettings

logger = get_logger()


class CredentialTables(NexusSettings):
    """Where a connection's credential is checked again (``nexus_common.credentials``), and how
    long an answer is trusted: the bound within which a revoked credential stops being served."""

    users_table: str
    api_keys_table: str
    tokens_table: str
    credential_cache_seconds: int


def credential_check(config: CredentialTables) -> CredentialCheck:
    return CredentialCheck(
        config.users_table, config.api_keys_table, config.tokens_table, float(config.credential_cache_seconds)
    )


def user_pk(user_id: str) -> str:
    return f"USER#{user_id}"


class StreamingConnections(ConnectionStore):
    """``ConnectionStore`` that also keeps each connection's credential (module docstring)."""

    def add_with(self, connection: Connection, credential: Credential | None, now: datetime) -> None:
        self.add(connection, now)
        if credential is not None:
            self.table.put_item(
                Item={
                    "pk": user_pk(credential.user_id),
                    "sk": connection.connection_id,
                    **credential.to_item(),
                    "expires_at": int(now.timestamp()) + CONNECTION_TTL_SECONDS,
                }
            )

    def subscribe_with(self, connection_id: str, channel: str, expires_at: int, credential: Credential | None) -> None:
        self.subscribe(connection_id, channel, expires_at, credential.to_item() if credential is not None else None)

    def remove(self, connection_id: str, channels: Iterable[str] = ()) -> None:
        connection = self.get(connection_id)
        super().remove(connection_id, channels)
        if connection is not None and connection.user_id:
            self.table.delete_item(Key={"pk": user_pk(connection.user_id), "sk": connection_id})

    def subscribers_with_credentials(self, channel: str) -> list[tuple[str, Credential | None]]:
        """A channel's subscribers with the credential each subscribed with: one ``Query``."""
        items = paginate(
            self.table.query,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": sub_pk(channel)},
            ProjectionExpression="sk, user_id, key_id, session_id",
        )
        return [(str(item["sk"]), Credential.from_item(item)) for item in items]

    def connections_of(self, user_id: str) -> list[tuple[str, Credential]]:
        found: list[tuple[str, Credential]] = []
        items = paginate(
            self.table.query, KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": user_pk(user_id)}
        )
        for item in items:
            credential = Credential.from_item(item)
            if credential is not None:
                found.append((str(item["sk"]), credential))
        return found


class Guard:
    """Re-checks credentials and closes the connections whose credential is no longer good."""

    def __init__(self, store: StreamingConnections, api: ManagementApi, check: CredentialCheck) -> None:
        self.store = store
        self.api = api
        self.check = check

    def allows(self, credential: Credential | None) -> bool:
        """A connection without a recorded credential predates the record: it is let be (its
        record expires within 2 h)."""
        return credential is None or self.check.valid(credential)

    def close(self, connection_id: str, reason: str) -> None:
        """Close the WebSocket (API Gateway then sends ``$disconnect``) and forget it now."""
        try:
            self.api.client.delete_connection(ConnectionId=connection_id)
        except Exception as exc:  # a gone connection is already closed; anything else re-raised
            if error_code(exc) not in ("GoneException", "410") and type(exc).__name__ != "GoneException":
                raise
        self.store.remove(connection_id)
        logger.info("connection closed", extra={"connection_id": connection_id, "reason": reason})

    def close_matching(self, user_id: str, key_id: str = "", session_id: str = "") -> list[str]:
        """Close the user's connections made with that key or session (with neither: all of
        them, e.g. a disabled user). Returns the ids closed."""
        self.check.forget(user_id)
        closed = []
        for connection_id, credential in self.store.connections_of(user_id):
            if key_id and credential.key_id != key_id:
                continue
            if session_id and credential.session_id != session_id:
                continue
            self.close(connection_id, "credential revoked")
            closed.append(connection_id)
        return closed


class GuardedPublisher(Publisher):
    """``Publisher`` whose private channels (``<name>:...`` for each name of
    ``private_channels``) reach only subscribers whose credential is still good; the others are
    closed instead of served. Other channels are published as ``Publisher`` does."""

    def __init__(
        self, store: StreamingConnections, api: ManagementApi, guard: Guard, private_channels: Iterable[str]
    ) -> None:
        super().__init__(store, api)
        self.connections = store
        self.guard = guard
        self._private_prefixes = tuple(f"{name}:" for name in private_channels)

    def is_private(self, channel: str) -> bool:
        return channel.startswith(self._private_prefixes)

    def subscribers(self, channel: str) -> list[str]:
        if not self.is_private(channel):
            return super().subscribers(channel)
        if channel not in self._subscribers:
            allowed = []
            for connection_id, credential in self.connections.subscribers_with_credentials(channel):
                if self.guard.allows(credential):
                    allowed.append(connection_id)
                elif connection_id not in self._gone:
                    self._gone.add(connection_id)
                    self.guard.close(connection_id, "credential no longer valid")
            self._subscribers[channel] = allowed
        return [c for c in self._subscribers[channel] if c not in self._gone]
