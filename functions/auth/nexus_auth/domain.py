"""Identity rules: users and their accounts, login, sessions, API keys, roles, admin switches.

No boto3 here: the service reads and writes through an ``IdentityStore`` (``nexus_auth.store``
on DynamoDB) and publishes security events through an ``AuditSink``.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final, Protocol

from nexus_common.audit import AuditEvent, AuditSink
from nexus_common.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from nexus_common.events import iso
from nexus_common.identity import ROLES, SCOPES, Principal
from nexus_common.ratelimit import RateLimited

from nexus_auth import tokens as tk
from nexus_auth.keys import generate_api_key, hash_api_key, key_id
from nexus_auth.passwords import Passwords, check_policy

__all__ = ["Conflict", "IdentityService", "IdentityStore", "SessionPolicy", "normalize_email"]

SOURCE: Final = "auth"
INVALID_CREDENTIALS: Final = "invalid email or password"
_USER_ID: Final = re.compile(r"usr_[0-9a-f]{32}")
_SYMBOL_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-")


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


class IdentityService:
    def __init__(
        self,
        store: IdentityStore,
        passwords: Passwords,
        ring: tk.KeyRing | None,
        audit: AuditSink,
        policy: SessionPolicy | None = None,
    ) -> None:
        self.store = store
        self.passwords = passwords
        self._ring = ring
        self.audit = audit
        self.policy = policy or SessionPolicy()

    @property
    def ring(self) -> tk.KeyRing:
        if self._ring is None:
            raise RuntimeError("this service was built without signing keys")
        return self._ring

    def _event(self, kind: str, aggregate_type: str, aggregate_id: str, actor: str, **details: str) -> None:
        self.audit.publish(
            AuditEvent(
                kind=kind,
                aggregate_type=aggregate_type,
                aggregate_id=aggregate_id,
                actor=actor,
                source=SOURCE,
                details={k: v for k, v in details.items() if v},
            )
        )

    # -- users -------------------------------------------------------------------------------

    def create_user(
        self,
        *,
        email: str | None,
        password: str | None,
        name: str,
        now: datetime,
        roles: Iterable[str] = ("trader",),
        cash: Decimal = Decimal("0.00"),
        with_key: bool = False,
    ) -> tuple[dict[str, Any], dict[str, Any], CreatedKey | None]:
        """A user with one account (and optionally a first key bound to it, scopes read+trade)."""
        user_id = f"usr_{uuid.uuid4().hex}"
        account = new_account_item(name, now, cash, owner=user_id)
        user = {
            "user_id": user_id,
            "email": normalize_email(email) if email else None,
            "name": name,
            "password_hash": self.passwords.hash(password) if password else None,
            "roles": list(roles),
            "accounts": [account["account_id"]],
            "default_account_id": account["account_id"],
            "status": "active",
            "created_at": iso(now),
            "active_keys": 1 if with_key else 0,
        }
        created_key = (
            self._key_item(user_id, "first key", list(SCOPES), account["account_id"], now) if with_key else None
        )
        self.store.create_user(user, [account], created_key.item if created_key else None)
        return user, account, created_key

    def register(self, email: str, password: str, name: str | None, now: datetime) -> None:
        """Create a user unless the email is taken; the caller cannot tell which happened."""
        normalized = normalize_email(email)
        check_policy(password, normalized)
        display = clean_name(name) if name else normalized.split("@", 1)[0]
        if self.store.user_id_by_email(normalized) is not None:
            self.passwords.hash(password)  # the same work as a new registration
            self._event("register_duplicate", "email", email_digest(normalized), "anonymous")
            return
        try:
            user, _, _ = self.create_user(email=normalized, password=password, name=display, now=now)
        except Conflict:
            self._event("register_duplicate", "email", email_digest(normalized), "anonymous")
            return
        self._event("user_registered", "user", user["user_id"], user["user_id"])

    def profile(self, user_id: str) -> dict[str, Any]:
        user = self.store.get_user(user_id) if _USER_ID.fullmatch(user_id) else None
        if user is None:
            raise NotFound("user_not_found", "no such user")
        return user

    def update_profile(self, principal: Principal, name: str | None, default_account_id: str | None) -> dict[str, Any]:
        user = self.profile(principal.user_id)
        values: dict[str, Any] = {}
        if name is not None:
            values["name"] = clean_name(name)
        if default_account_id is not None:
            if default_account_id not in (user.get("accounts") or []):
                raise ValidationFailed("invalid_field", "not one of your accounts", "default_account_id")
            values["default_account_id"] = default_account_id
        if not values:
            return user
        return self.store.update_user(principal.user_id, values)

    def open_account(self, principal: Principal, name: str, now: datetime) -> dict[str, Any]:
        self.profile(principal.user_id)
        account = new_account_item(clean_name(name), now, owner=principal.user_id)
        self.store.add_account(principal.user_id, account, self.policy.max_accounts)
        self._event("account_opened", "account", account["account_id"], principal.user_id)
        return account

    def change_role(self, user_id: str, role: str, grant: bool, actor: str) -> list[str]:
        if role not in ROLES:
            raise ValidationFailed("invalid_field", "role must be one of: " + ", ".join(ROLES), "role")
        user = self.profile(user_id)
        roles = [str(r) for r in user.get("roles") or []]
        if grant and role not in roles:
            roles.append(role)
        elif not grant and role in roles:
            roles.remove(role)
        self.store.update_user(user_id, {"roles": roles})
        self._event("role_granted" if grant else "role_revoked", "user", user_id, actor, role=role)
        return roles

    def disable_user(self, user_id: str, actor: str) -> None:
        """No more logins, refreshes or requests for the user, from any of their keys or sessions
        (the authorizer reads the user's status on every request; open WebSockets are closed on
        the ``user_disabled`` audit event)."""
        self.profile(user_id)
        self.store.update_user(user_id, {"status": "disabled"})
        self._event("user_disabled", "user", user_id, actor)

    def user_id_for(self, email_or_id: str) -> str:
        if email_or_id.startswith("usr_"):
            return email_or_id
        found = self.store.user_id_by_email(normalize_email(email_or_id))
        if found is None:
            raise NotFound("user_not_found", "no such user")
        return found

    # -- login and sessions ------------------------------------------------------------------

    def login(self, email: str, password: str, now: datetime, source_ip: str = "") -> TokenPair:
        normalized = normalize_email(email)
        digest = email_digest(normalized)
        stamp = int(now.timestamp())
        state = self.store.get_login_state(digest) or {}
        if state and int(state.get("expires_at") or 0) <= stamp:  # an old streak of failures: forgotten
            self.store.clear_failures(digest)
            state = {}
        locked_until = int(state.get("locked_until") or 0)
        if locked_until > stamp:
            self.passwords.verify(None, password)  # same work whether locked or not
            raise RateLimited(locked_until - stamp, "login_locked", "too many failed logins; try again later")
        user_id = self.store.user_id_by_email(normalized)
        user = self.store.get_user(user_id) if user_id else None
        stored = str(user["password_hash"]) if user and user.get("password_hash") else None
        ok = self.passwords.verify(stored, password)
        if not ok or user is None or user.get("status") != "active":
            self._failed_login(digest, user_id, stamp, source_ip)
            raise Unauthorized("invalid_credentials", INVALID_CREDENTIALS)
        if state:
            self.store.clear_failures(digest)
        if stored and self.passwords.needs_rehash(stored):
            self.store.update_user(user["user_id"], {"password_hash": self.passwords.hash(password)})
        pair = self._open_session(str(user["user_id"]), now)
        self._event("login", "user", str(user["user_id"]), str(user["user_id"]), source_ip=source_ip)
        return pair

    def _failed_login(self, digest: str, user_id: str | None, stamp: int, source_ip: str) -> None:
        lock_seconds = int(self.policy.lockout.total_seconds())
        failures = self.store.record_failure(digest, stamp + lock_seconds)
        aggregate = ("user", user_id) if user_id else ("email", digest)
        self._event("login_failed", aggregate[0], aggregate[1], "anonymous", source_ip=source_ip)
        if failures >= self.policy.lockout_threshold:
            self.store.lock(digest, stamp + lock_seconds, stamp + lock_seconds)
            self._event("login_locked", aggregate[0], aggregate[1], "system", seconds=str(lock_seconds))

    def _open_session(self, user_id: str, now: datetime) -> TokenPair:
        family_id = tk.new_family_id()
        refresh = tk.new_refresh_token(family_id)
        self.store.put_family(
            {
                "family_id": family_id,
                "user_id": user_id,
                "status": "active",
                "current_hash": tk.token_hash(refresh),
                "created_at": iso(now),
                "expires_at": int((now + self.policy.refresh_ttl).timestamp()),
            }
        )
        access = tk.issue_access_token(self.ring, user_id, family_id, now, self.policy.access_ttl)
        return TokenPair(access, refresh, int(self.policy.access_ttl.total_seconds()), user_id)

    def refresh(self, refresh_token: str, now: datetime) -> TokenPair:
        family_id = tk.parse_refresh_token(refresh_token)
        if family_id is None:
            raise Unauthorized("invalid_token", "invalid refresh token")
        family = self.store.get_family(family_id)
        if family is None:
            raise Unauthorized("invalid_token", "invalid refresh token")
        presented = tk.token_hash(refresh_token)
        user_id = str(family["user_id"])
        is_current = hmac.compare_digest(presented, str(family.get("current_hash", "")))
        if not is_current:
            if self.store.used_token_family(presented) == family_id:
                self._revoke(family_id, user_id, "refresh_token_reuse", now, actor="system")
                self._event("refresh_reuse_detected", "user", user_id, "system", session_id=family_id)
            raise Unauthorized("invalid_token", "invalid refresh token")
        if family.get("status") != "active" or int(family.get("expires_at", 0)) <= int(now.timestamp()):
            raise Unauthorized("invalid_token", "invalid refresh token")
        user = self.store.get_user(user_id)
        if user is None or user.get("status") != "active":
            raise Unauthorized("invalid_token", "invalid refresh token")
        new_refresh = tk.new_refresh_token(family_id)
        if not self.store.rotate_family(
            family_id, presented, tk.token_hash(new_refresh), int(family["expires_at"]), iso(now)
        ):
            # another refresh with this very token won the race: the token was used twice
            self._revoke(family_id, user_id, "refresh_token_reuse", now, actor="system")
            self._event("refresh_reuse_detected", "user", user_id, "system", session_id=family_id)
            raise Unauthorized("invalid_token", "invalid refresh token")
        access = tk.issue_access_token(self.ring, user_id, family_id, now, self.policy.access_ttl)
        self._event("token_refreshed", "user", user_id, user_id, session_id=family_id)
        return TokenPair(access, new_refresh, int(self.policy.access_ttl.total_seconds()), user_id)

    def _revoke(self, family_id: str, user_id: str, reason: str, now: datetime, actor: str) -> None:
        self.store.revoke_family(family_id, reason, iso(now))
        self._event("session_revoked", "user", user_id, actor, session_id=family_id, reason=reason)

    def logout(self, principal: Principal, now: datetime) -> None:
        if not principal.session_id:
            raise ValidationFailed("not_a_session", "log out with the access token of a login, not an API key")
        self._revoke(principal.session_id, principal.user_id, "logout", now, actor=principal.user_id)

    # -- API keys ----------------------------------------------------------------------------

    def _key_item(
        self, user_id: str, name: str, scopes: list[str], account_id: str | None, now: datetime
    ) -> CreatedKey:
        api_key = generate_api_key()
        item = {
            "key_hash": hash_api_key(api_key),
            "key_id": key_id(api_key),
            "user_id": user_id,
            "account_id": account_id,
            "name": name,
            "scopes": sorted(set(scopes)),
            "status": "active",
            "created_at": iso(now),
        }
        return CreatedKey({k: v for k, v in item.items() if v is not None}, api_key)

    @staticmethod
    def _require_session(principal: Principal) -> None:
        if not principal.session_id:
            raise Forbidden("session_required", "API keys are managed with a login session, not with an API key")

    def create_key(
        self, principal: Principal, name: str, scopes: list[str], account_id: str | None, now: datetime
    ) -> CreatedKey:
        self._require_session(principal)
        if account_id is not None and not principal.owns(account_id):
            raise ValidationFailed("invalid_field", "not one of your accounts", "account_id")
        created = self._key_item(principal.user_id, clean_name(name), scopes, account_id, now)
        user = self.profile(principal.user_id)
        if "active_keys" not in user:  # a user from before the count was kept: start it
            active = sum(1 for k in self.store.keys_of(principal.user_id) if k.get("status") == "active")
            self.store.count_active_keys(principal.user_id, active)
        self.store.put_key(created.item, self.policy.max_api_keys)
        self._event(
            "api_key_created", "api_key", created.item["key_id"], principal.user_id,
            scopes=",".join(created.item["scopes"]), account_id=account_id or "",
        )
        return created

    def list_keys(self, principal: Principal) -> list[dict[str, Any]]:
        return sorted(self.store.keys_of(principal.user_id), key=lambda i: str(i.get("created_at", "")))

    def revoke_key(self, principal: Principal, wanted_key_id: str, now: datetime) -> dict[str, Any]:
        self._require_session(principal)
        for item in self.store.keys_of(principal.user_id):
            if hmac.compare_digest(str(item.get("key_id", "")).encode(), wanted_key_id.encode()):
                if item.get("status") != "revoked":
                    self.store.revoke_key(str(item["key_hash"]), iso(now), principal.user_id)
                    self._event("api_key_revoked", "api_key", str(item["key_id"]), principal.user_id)
                return {**item, "status": "revoked", "revoked_at": item.get("revoked_at") or iso(now)}
        raise NotFound("key_not_found", "no such key")

    # -- admin -------------------------------------------------------------------------------

    def set_halt(self, principal: Principal, symbol: str, halted: bool, reason: str) -> dict[str, str]:
        if not symbol or len(symbol) > 12 or not set(symbol) <= _SYMBOL_CHARS:
            raise NotFound("unknown_symbol", "unknown symbol", "symbol")
        status = "halted" if halted else "active"
        if not self.store.set_instrument_status(symbol, status):
            raise NotFound("unknown_symbol", "unknown symbol", "symbol")
        kind = "symbol_halted" if halted else "symbol_resumed"
        self._event(kind, "symbol", symbol, principal.user_id, reason=reason)
        return {"symbol": symbol, "status": status}

    def set_trading(self, principal: Principal, account_id: str, enabled: bool, reason: str) -> dict[str, Any]:
        if not account_id.startswith("acc_") or len(account_id) > 64:
            raise NotFound("account_not_found", "no such account")
        if not self.store.set_trading_enabled(account_id, enabled):
            raise NotFound("account_not_found", "no such account")
        self._event(
            "kill_switch_off" if enabled else "kill_switch_on", "account", account_id, principal.user_id, reason=reason
        )
        return {"account_id": account_id, "trading_enabled": enabled}
