"""Is a credential still good? For long-lived connections authorized once (WebSocket ``$connect``).

The edge authorizer checks a credential on every REST request. A WebSocket is authorized once,
at ``$connect``; its connection record keeps the credential's ids (``user_id``, ``key_id`` of an
API key, ``session_id`` of a login) so the streaming functions can ask again, through
``CredentialCheck.valid``, before a subscription and before a private message is pushed:

* the user item is ``status: active`` (``UsersTable``, ``user#<id>``);
* a login session (refresh family, ``TokensTable`` ``family#<id>``) is active, of that user, and
  not past its ``expires_at``;
* an API key (``ApiKeysTable``, GSI ``by-user``: the user's keys, matched on ``key_id``) is active.

An answer is cached for ``ttl`` seconds (``CREDENTIAL_CACHE_SECONDS``, the template parameter
``CredentialCacheSeconds``): a revocation, a logout or a disabled user stops private messages
within that bound even if nothing closes the connection. A key made before users existed
(``legacy:<account>``) has no user to ask and is taken as valid.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from boto3.dynamodb.conditions import Key

from nexus_common.dynamo import LazyTable, paginate

LEGACY_PREFIX: Final = "legacy:"


@dataclass(frozen=True)
class Credential:
    """The ids of the credential a connection was authorized with (never the secret)."""

    user_id: str
    key_id: str = ""
    session_id: str = ""

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> Credential | None:
        user_id = item.get("user_id")
        if not isinstance(user_id, str) or not user_id:
            return None
        return cls(user_id, str(item.get("key_id") or ""), str(item.get("session_id") or ""))

    def to_item(self) -> dict[str, str]:
        item = {"user_id": self.user_id}
        if self.key_id:
            item["key_id"] = self.key_id
        if self.session_id:
            item["session_id"] = self.session_id
        return item


class CredentialCheck:
    """``valid(credential)``: the three reads above, each answer cached for ``ttl`` seconds."""

    def __init__(
        self,
        users_table: str,
        api_keys_table: str,
        tokens_table: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._users = LazyTable(users_table)
        self._keys = LazyTable(api_keys_table)
        self._tokens = LazyTable(tokens_table)
        self.ttl = ttl
        self.clock = clock  # monotonic seconds; tests move it past the bound
        self.wall_clock = wall_clock  # epoch seconds; tests fix it with the sessions they make
        self._lock = threading.Lock()
        self._cache: dict[Credential, tuple[bool, float]] = {}

    def valid(self, credential: Credential) -> bool:
        now = self.clock()
        with self._lock:
            cached = self._cache.get(credential)
        if cached is not None and now - cached[1] < self.ttl:
            return cached[0]
        answer = self._ask(credential)
        with self._lock:
            if len(self._cache) > 10_000:  # bounded: drop the lot rather than grow
                self._cache.clear()
            self._cache[credential] = (answer, now)
        return answer

    def forget(self, user_id: str) -> None:
        """Drop the cached answers of a user (after a revocation seen in this process)."""
        with self._lock:
            for credential in [c for c in self._cache if c.user_id == user_id]:
                del self._cache[credential]

    def _ask(self, credential: Credential) -> bool:
        if credential.user_id.startswith(LEGACY_PREFIX):
            return True
        user = self._users.table.get_item(Key={"pk": f"user#{credential.user_id}"}, ConsistentRead=True).get("Item")
        if not user or user.get("status") != "active":
            return False
        if credential.session_id:
            family = self._tokens.table.get_item(
                Key={"pk": f"family#{credential.session_id}"}, ConsistentRead=True
            ).get("Item")
            if not family or family.get("status") != "active" or family.get("user_id") != credential.user_id:
                return False
            if int(family.get("expires_at") or 0) <= int(self.wall_clock()):
                return False
        if credential.key_id:
            return self._key_active(credential.user_id, credential.key_id)
        return bool(credential.session_id)

    def _key_active(self, user_id: str, key_id: str) -> bool:
        # item by item: a page is read only once the items before it are not the key
        keys = paginate(self._keys.table.query, IndexName="by-user", KeyConditionExpression=Key("user_id").eq(user_id))
        for item in keys:
            if item.get("key_id") == key_id:
                return bool(item.get("status") == "active")
        return False
