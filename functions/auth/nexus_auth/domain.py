"""Identity rules: users and their accounts, login, sessions, API keys, roles, admin switches.

No boto3 here: the rules, value types and the ``IdentityStore`` port; the use cases are
``nexus_auth.service.IdentityService``, which reads and writes through an ``IdentityStore``
(``nexus_auth.repo`` on DynamoDB) and publishes security events through an ``AuditSink``.

* **Register** answers the same ``202`` whether the email is new or taken (no enumeration),
  hashing the password either way; a new user gets role ``trader`` and one empty USD account.
* **Login** answers ``401 invalid_credentials`` for an unknown email, a wrong password and a
  disabled user alike, after the same argon2 work. ``LOCKOUT_THRESHOLD`` failures in a row for an
  email address (known or not) lock it for ``lockout_seconds`` (``429 login_locked``).
* **Sessions**: a login opens a refresh-token family. ``refresh`` swaps the family's one valid
  refresh token for a new one (conditional write: one winner); presenting a token of the family
  that was already used revokes the whole family. ``logout`` revokes the caller's family. The
  authorizer refuses access tokens of a revoked family, so logout takes effect at once.
* **API keys** belong to a user, optionally to one of their accounts; scopes ``read``/``trade``.
  Managing keys needs a login session (a leaked key cannot mint or revoke keys).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Protocol

from nexus_common.errors import ValidationFailed
from nexus_common.events import iso
from nexus_common.identity import ROLES, SCOPES, Principal
from nexus_common.ratelimit import Bucket, Limit

SOURCE: Final = "auth"
INVALID_CREDENTIALS: Final = "invalid email or password"
USER_ID: Final = re.compile(r"usr_[0-9a-f]{32}")
SYMBOL_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


class IdentityStore(Protocol):
    def create_user(self, user: dict[str, Any], accounts: list[dict[str, Any]], key: dict[str, Any] | None) -> None: ...
    def get_user(self, user_id: str) -> dict[str, Any] | None: ...
    def user_id_by_email(self, email: str) -> str | None: ...
    def update_user(self, user_id: str, values: dict[str, Any]) -> dict[str, Any]: ...
    def add_account(self, user_id: str, account: dict[str, Any], max_accounts: int) -> None: ...
    def get_login_state(self, email_digest: str) -> dict[str, Any] | None: ...
    def record_failure(self, email_digest: str, expires_at: int) -> int: ...
    def lock(self, email_digest: str, locked_until: int, expires_at: int) -> None: ...
    def clear_failures(self, email_digest: str) -> None: ...
    def get_key(self, key_hash: str) -> dict[str, Any] | None: ...
    def put_key(self, item: dict[str, Any], max_active: int) -> None: ...
    def count_active_keys(self, user_id: str, count: int) -> None: ...
    def keys_of(self, user_id: str) -> list[dict[str, Any]]: ...
    def revoke_key(self, key_hash: str, revoked_at: str, user_id: str) -> None: ...
    def put_family(self, item: dict[str, Any]) -> None: ...
    def get_family(self, family_id: str) -> dict[str, Any] | None: ...
    def rotate_family(self, family_id: str, old_hash: str, new_hash: str, used_expires_at: int, at: str) -> bool: ...
    def used_token_family(self, token_hash: str) -> str | None: ...
    def revoke_family(self, family_id: str, reason: str, at: str) -> None: ...
    def get_account(self, account_id: str) -> dict[str, Any] | None: ...
    def set_trading_enabled(self, account_id: str, enabled: bool) -> bool: ...
    def set_instrument_status(self, symbol: str, status: str) -> bool: ...


@dataclass(frozen=True)
class SessionPolicy:
    access_ttl: timedelta = timedelta(minutes=15)
    refresh_ttl: timedelta = timedelta(days=30)  # absolute life of a session (family)
    lockout_threshold: int = 5
    lockout: timedelta = timedelta(minutes=15)
    # Caps per user: the accounts list travels in the user item and the authorizer context (a
    # 400 KB item), and every key or account is one more thing to watch. Over a cap: 409.
    max_api_keys: int = 20  # active keys (a revoked key frees its place)
    max_accounts: int = 10


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    user_id: str

    def __repr__(self) -> str:  # never the tokens
        return f"TokenPair(user_id={self.user_id!r})"

    def to_wire(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "refresh_token": self.refresh_token,
            "user_id": self.user_id,
        }


@dataclass(frozen=True)
class CreatedKey:
    item: dict[str, Any]
    api_key: str = field(repr=False)


def normalize_email(email: str) -> str:
    return unicodedata.normalize("NFKC", email).strip().lower()


def email_digest(email: str) -> str:
    return hashlib.sha256(normalize_email(email).encode("utf-8")).hexdigest()


def clean_name(name: str, field_name: str = "name") -> str:
    cleaned = " ".join(name.split())
    if not cleaned or any(unicodedata.category(c).startswith("C") for c in cleaned):
        raise ValidationFailed("invalid_field", f"{field_name} must be printable text", field_name)
    return cleaned


def new_account_item(
    name: str, now: datetime, cash: Decimal = Decimal("0.00"), owner: str | None = None
) -> dict[str, Any]:
    return {
        "account_id": f"acc_{uuid.uuid4().hex}",
        "name": name,
        "cash": cash,
        "currency": "USD",
        "status": "active",
        "created_at": iso(now),
        "owner_user_id": owner,
    }


def key_to_wire(item: dict[str, Any]) -> dict[str, Any]:
    return {
        "key_id": str(item.get("key_id", "")),
        "name": str(item.get("name") or item.get("key_id", "")),
        "scopes": sorted(str(s) for s in (item.get("scopes") or SCOPES)),
        "account_id": item.get("account_id"),
        "status": str(item.get("status", "")),
        "created_at": str(item.get("created_at", "")),
        "revoked_at": item.get("revoked_at"),
    }


def profile_to_wire(user: dict[str, Any]) -> dict[str, Any]:
    return {
        "user_id": user["user_id"],
        "email": user.get("email"),
        "name": user.get("name") or "",
        "roles": [str(r) for r in user.get("roles") or []],
        "accounts": [str(a) for a in user.get("accounts") or []],
        "default_account_id": str(user.get("default_account_id", "")),
        "created_at": str(user.get("created_at", "")),
    }


# -- the edge authorizer's rules ---------------------------------------------------------------

ORDER_ENTRY_METHODS: Final = frozenset({"POST", "DELETE", "PUT", "PATCH"})
_READ_METHODS: Final = ("GET", "HEAD", "OPTIONS")


@dataclass(frozen=True)
class RateLimits:
    """The authorizer's limits, each ``tokens per second / burst`` (``nexus_common.ratelimit.Limit``)."""

    credential: str  # per user, whatever the credential
    orders: str  # order entry per user and per account
    ip: str  # per source IP


def roles_of(user: dict[str, Any]) -> tuple[str, ...]:
    return tuple(r for r in (str(x) for x in user.get("roles") or []) if r in ROLES)


def act_as(principal: Principal, wanted: str | None) -> Principal:
    """The principal acting for ``X-Account-Id`` (when given); ``PermissionError`` if it is not theirs."""
    if wanted is None or not wanted.strip():
        return principal
    wanted = wanted.strip()
    for owned in principal.accounts:
        if hmac.compare_digest(owned.encode(), wanted.encode()):
            return Principal(
                principal.user_id, owned, principal.accounts, principal.roles, principal.scopes,
                principal.key_id, principal.session_id,
            )
    raise PermissionError("X-Account-Id names an account the caller does not own")


def is_order_entry(method: str, path: str) -> bool:
    return method in ORDER_ENTRY_METHODS and path.startswith("/v1/orders")


# The hot routes, whose requests the authorizer may serve on the key, session and user items it
# keeps (``service.RecentCredentials``): orders and market data, where no role is asked for. Every
# other route (profile, keys, admin, compliance, reports, ...) and every WebSocket $connect reads
# them afresh, so a role granted or taken away counts at once wherever a role is checked.
KEPT_ITEM_ROUTES: Final = ("/v1/orders", "/v1/markets")


def may_use_kept_items(path: str, websocket: bool) -> bool:
    return not websocket and (path in KEPT_ITEM_ROUTES or path.startswith(tuple(f"{r}/" for r in KEPT_ITEM_ROUTES)))


def buckets(principal: Principal, method: str, path: str, source_ip: str, limits: RateLimits) -> list[Bucket]:
    """The buckets a request takes from: per user (whatever the credential: a user's keys and
    sessions share one bucket, so more keys buy no more requests), per source IP, and for order
    entry per user and per acting account."""
    who = f"user:{principal.user_id}"
    chosen = [Bucket(who, Limit.parse(limits.credential))]
    if source_ip:
        chosen.append(Bucket(f"ip:{source_ip}", Limit.parse(limits.ip)))
    if is_order_entry(method, path):
        orders = Limit.parse(limits.orders)
        chosen.append(Bucket(f"orders:{who}", orders))
        chosen.append(Bucket(f"orders:account:{principal.account_id}", orders))
    return chosen


def api_resource(method_arn: str, method: str = "*") -> str:
    """``arn:...:apiId/stage/GET/v1/orders`` -> ``arn:...:apiId/stage/<method>/*``."""
    parts = method_arn.split("/")
    if len(parts) < 2 or not parts[0].startswith("arn:"):
        raise ValueError("not a method ARN")
    return f"{parts[0]}/{parts[1]}/{method}" + ("" if method == "*" else "/*")


def policy(
    principal: Principal, method_arn: str, websocket: bool, limits: dict[str, str] | None = None
) -> dict[str, Any]:
    """The Allow policy: a ``trade`` credential may invoke the whole API, a ``read``-only one only
    ``GET``/``HEAD``/``OPTIONS``; a WebSocket ``$connect`` exactly the method ARN."""
    if websocket:
        resources: list[str] = [method_arn]
    elif "trade" in principal.scopes:
        resources = [api_resource(method_arn)]
    else:
        resources = [api_resource(method_arn, m) for m in _READ_METHODS]
    return {
        "principalId": principal.user_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Allow", "Resource": resources}],
        },
        "context": {**principal.to_context(), **(limits or {"retry_after": "0"})},
    }


def deny(principal_id: str, method_arn: str) -> dict[str, Any]:
    return {
        "principalId": principal_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [{"Action": "execute-api:Invoke", "Effect": "Deny", "Resource": [method_arn]}],
        },
    }
