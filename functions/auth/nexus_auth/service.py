"""The application layer of identity: the use cases the handlers call.

* ``IdentityService``: users and their accounts, login, sessions, API keys, roles, admin
  switches (the rules are in ``nexus_auth.domain``; reads and writes through an
  ``IdentityStore``, ``nexus_auth.repo`` on DynamoDB; security events through an ``AuditSink``);
* ``EdgeAuthorizer``: a credential -> the principal and its IAM policy, with the rate limits;
* ``RecentCredentials``: the authorizer's reads of keys, users and sessions, each good item kept
  for a bounded time (``AUTHORIZER_CACHE_SECONDS``);
* ``PublicRouteLimits``: the per source IP limits of the public auth routes;
* ``TradingHalts``: a symbol's halt or resume, on the instruments table and the engine's journal.
"""

from __future__ import annotations

import hmac
import math
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from nexus_common.audit import AuditEvent, AuditSink
from nexus_common.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed
from nexus_common.events import iso
from nexus_common.identity import ROLES, SCOPES, Principal
from nexus_common.ratelimit import Bucket, Limit, LimiterUnavailable, RateLimited, RateLimiter

from nexus_auth import tokens as tk
from nexus_auth.domain import (
    INVALID_CREDENTIALS,
    SOURCE,
    SYMBOL_CHARS,
    USER_ID,
    CreatedKey,
    IdentityStore,
    RateLimits,
    SessionPolicy,
    TokenPair,
    act_as,
    buckets,
    clean_name,
    deny,
    email_digest,
    is_order_entry,
    may_use_kept_items,
    new_account_item,
    normalize_email,
    policy,
    roles_of,
)
from nexus_auth.keys import bearer_key, generate_api_key, hash_api_key, key_id
from nexus_auth.passwords import Passwords, check_policy


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
        user = self.store.get_user(user_id) if USER_ID.fullmatch(user_id) else None
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
        user = self.profile(principal.user_id)
        # the user item, not the authorizer's context: that may be a moment older than a new account
        if account_id is not None and account_id not in {str(a) for a in user.get("accounts") or []}:
            raise ValidationFailed("invalid_field", "not one of your accounts", "account_id")
        created = self._key_item(principal.user_id, clean_name(name), scopes, account_id, now)
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
        if not symbol or len(symbol) > 12 or not set(symbol) <= SYMBOL_CHARS:
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


# -- the edge authorizer -----------------------------------------------------------------------


class Denied(Exception):
    """The credential is unusable: 401."""


@dataclass(frozen=True)
class EdgeRequest:
    """What the authorizer needs of an API Gateway REQUEST (REST) or ``$connect`` (WebSocket) event."""

    method_arn: str
    websocket: bool
    credential: str | None
    account_header: str | None
    method: str = ""
    path: str = ""
    source_ip: str = ""


class CredentialReads(Protocol):
    """What the edge authorizer reads: an API key by its hash, a user, a login session."""

    def get_key(self, key_hash: str) -> dict[str, Any] | None: ...
    def get_user(self, user_id: str) -> dict[str, Any] | None: ...
    def get_family(self, family_id: str) -> dict[str, Any] | None: ...


@runtime_checkable
class PairedCredentialReads(CredentialReads, Protocol):
    """``CredentialReads`` that can also read an API key and a user in one request."""

    def get_key_and_user(self, key_hash: str, user_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]: ...


MAX_RECENT_CREDENTIALS = 10_000  # items kept per warm authorizer; past it the oldest half is dropped


class RecentCredentials:
    """``CredentialReads`` that keeps each *good* item it read for ``ttl`` seconds.

    A warm authorizer serves a hot credential's orders and market-data requests
    (``domain.may_use_kept_items``) without reading its key (or session) and its user again each
    time: the bound is the staleness of a change there. A revoked key, a logout or a disabled user
    counts on those routes within ``ttl`` seconds (``AUTHORIZER_CACHE_SECONDS``, the template's
    ``AuthorizerCacheSeconds``; 0 reads every time); every other route reads afresh.
    Only good items are kept (an active key, an active user, an active session): a missing,
    revoked or disabled one is read again on the next request, so a new key counts at once. A
    ``fresh`` read goes to the table (and keeps what it read): the authorizer decides a refusal
    only on fresh reads, so a kept item can delay a revocation but never refuse a request.

    A key read again past its time is read with its user, in one request, when the source can
    (``PairedCredentialReads``): the user named by the key's last read, since a key's user never
    changes. Both are then kept from the same instant, so a hot key costs one request per ``ttl``
    instead of two. (Should the key name another user, that user is read on its own.)"""

    def __init__(self, source: CredentialReads, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.source = source
        self.ttl = ttl
        self.clock = clock  # monotonic seconds; tests move it past the bound
        self._lock = threading.Lock()
        self._local = threading.local()
        self._items: dict[tuple[str, str], tuple[float, dict[str, Any]]] = {}

    def get_key(self, key_hash: str, fresh: bool = False) -> dict[str, Any] | None:
        paired = None if fresh or self.ttl <= 0 else self._user_of_due_key(key_hash)
        if paired is None or not isinstance(self.source, PairedCredentialReads):  # one read, the key's
            return self._read(("key", key_hash), self.source.get_key, fresh)
        now = self.clock()
        key_item, user_item = self.source.get_key_and_user(key_hash, paired)
        with self._lock:
            self._keep(("user", paired), user_item, now)
            key_item = self._keep(("key", key_hash), key_item, now)
        read_now: set[tuple[str, str]] = getattr(self._local, "read_now", set())
        self._local.read_now = read_now | {("user", paired)}  # read by this request: not a kept item
        return key_item

    def _user_of_due_key(self, key_hash: str) -> str | None:
        """The user of a key kept before and past its time (None: kept and in time, never read,
        or without a user)."""
        with self._lock:
            kept = self._items.get(("key", key_hash))
        if kept is None or self.clock() < kept[0] or not kept[1].get("user_id"):
            return None
        return str(kept[1]["user_id"])

    def get_user(self, user_id: str, fresh: bool = False) -> dict[str, Any] | None:
        return self._read(("user", user_id), self.source.get_user, fresh)

    def get_family(self, family_id: str, fresh: bool = False) -> dict[str, Any] | None:
        return self._read(("family", family_id), self.source.get_family, fresh)

    def begin(self) -> None:
        """A request starts: ``kept_used`` says whether its reads were served from kept items."""
        self._local.kept = False
        self._local.read_now = set()

    def kept_used(self) -> bool:
        return bool(getattr(self._local, "kept", False))

    def _read(
        self, key: tuple[str, str], read: Callable[[str], dict[str, Any] | None], fresh: bool
    ) -> dict[str, Any] | None:
        """The kept item, unless ``fresh`` or past its time; else read (and kept when good)."""
        now = self.clock()
        if self.ttl > 0 and not fresh:
            with self._lock:
                kept = self._items.get(key)
            if kept is not None and now < kept[0]:
                if key not in getattr(self._local, "read_now", ()):
                    self._local.kept = True
                return dict(kept[1])
        item = read(key[1])
        with self._lock:
            return self._keep(key, item, now)

    def _keep(self, key: tuple[str, str], item: dict[str, Any] | None, now: float) -> dict[str, Any] | None:
        """Keep a good item read at ``now`` (a missing or no longer good one is dropped); under
        the lock. Returns the item."""
        if item is None or item.get("status") != "active" or self.ttl <= 0:
            self._items.pop(key, None)
            return item
        if len(self._items) >= MAX_RECENT_CREDENTIALS:
            oldest = sorted(self._items, key=lambda k: self._items[k][0])[: MAX_RECENT_CREDENTIALS // 2]
            for stale in oldest:
                del self._items[stale]
        self._items[key] = (now + self.ttl, dict(item))
        return item


class EdgeAuthorizer:
    """A credential -> the principal (context) and an IAM policy (see ``nexus_auth.authorizer``).

    Its parts are factories, each called only when it is needed: the store and the signing keys
    when a credential is looked up (a missing or malformed credential is refused without them), the
    limiter and the limits when a REST request takes from its buckets (a WebSocket ``$connect``
    never asks Redis)."""

    def __init__(
        self,
        store: Callable[[], RecentCredentials],
        ring: Callable[[], tk.KeyRing],
        limiter: Callable[[], RateLimiter],
        limits: Callable[[], RateLimits],
        logger: Any,
    ) -> None:
        self.store = store
        self.ring = ring
        self.limiter = limiter
        self.limits = limits
        self.logger = logger
        self._local = threading.local()  # per request: whether it has read through the store

    def authorize(self, request: EdgeRequest) -> dict[str, Any]:
        """The Allow or Deny policy of ``request``; ``Denied`` when its credential is unusable.

        Kept items (``RecentCredentials``) serve only the hot routes (``may_use_kept_items``:
        orders and market data; everything else reads afresh), and may only delay a revocation
        there, never refuse: a refusal made on a kept item is made again on fresh reads (so a new
        account, a key bound to it or a re-enabled user count at once)."""
        fresh = not may_use_kept_items(request.path, request.websocket)
        self._local.store_used = False
        try:
            try:
                principal = self.acting_principal(request, fresh)
            except (Denied, PermissionError):
                if fresh or not (self._local.store_used and self.store().kept_used()):
                    raise
                principal = self.acting_principal(request, fresh=True)
        except PermissionError as refusal:
            reason, user_id = refusal.args
            self.logger.info(f"denied: {reason}", extra={"user_id": user_id})
            return deny(user_id, request.method_arn)
        limits = None if request.websocket else self.limits_context(principal, request)
        self.logger.info(
            "allowed",
            extra={"user_id": principal.user_id, "account_id": principal.account_id, "key_id": principal.key_id},
        )
        return policy(principal, request.method_arn, request.websocket, limits)

    def _reads(self) -> RecentCredentials:
        """The store, told when a request first reads through it (a missing or malformed
        credential is refused without building it)."""
        store = self.store()
        if not self._local.store_used:
            store.begin()
            self._local.store_used = True
        return store

    def acting_principal(self, request: EdgeRequest, fresh: bool = False) -> Principal:
        """The principal acting for the request's account (``fresh``: on items read now);
        ``Denied`` (401) for an unusable credential, ``PermissionError(reason, user id)`` (a Deny
        policy) when it may not act."""
        principal = self.authenticate(request.credential, fresh)
        try:
            principal = act_as(principal, request.account_header)
        except PermissionError:
            raise PermissionError("account not owned", principal.user_id) from None
        if not principal.account_id:
            raise PermissionError("no account", principal.user_id)
        return principal

    def authenticate(self, credential: str | None, fresh: bool = False) -> Principal:
        if credential is None:
            raise Denied("missing or malformed credentials")
        api_key = bearer_key(f"Bearer {credential}") if credential.startswith("nxk_") else None
        if api_key is not None:
            return self.principal_of_key(api_key, fresh)
        if tk.looks_like_jwt(credential):
            return self.principal_of_token(credential, fresh)
        raise Denied("malformed credentials")

    def _user(self, user_id: str, fresh: bool) -> dict[str, Any]:
        item = self._reads().get_user(user_id, fresh)
        if not item or item.get("status") != "active":
            raise Denied("unknown or disabled user")
        return item

    def principal_of_key(self, api_key: str, fresh: bool = False) -> Principal:
        key_hash = hash_api_key(api_key)
        item = self._reads().get_key(key_hash, fresh)
        if (
            not item
            or item.get("status") != "active"
            or not hmac.compare_digest(str(item.get("key_hash", "")), key_hash)
        ):
            raise Denied("unknown or revoked key")
        key_id = str(item.get("key_id", ""))
        scopes = tuple(s for s in (str(x) for x in item.get("scopes") or SCOPES) if s in SCOPES)
        bound = str(item["account_id"]) if item.get("account_id") else None
        if not item.get("user_id"):  # a key from before users: bound to its account, read + trade
            if bound is None:
                raise Denied("key without user or account")
            return Principal(f"legacy:{bound}", bound, (bound,), ("trader",), scopes, key_id=key_id)
        user = self._user(str(item["user_id"]), fresh)
        owned = tuple(str(a) for a in user.get("accounts") or [])
        if bound is not None and bound not in owned:
            raise Denied("key bound to an account the user no longer owns")
        accounts = (bound,) if bound is not None else owned
        default = bound or str(user.get("default_account_id") or (owned[0] if owned else ""))
        return Principal(str(user["user_id"]), default, accounts, roles_of(user), scopes, key_id=key_id)

    def principal_of_token(self, token: str, fresh: bool = False) -> Principal:
        try:
            claims = tk.verify_access_token(self.ring(), token)
        except tk.InvalidToken as exc:
            raise Denied(f"token refused: {exc}") from None
        family = self._reads().get_family(claims.session_id, fresh)
        if not family or family.get("status") != "active" or family.get("user_id") != claims.user_id:
            raise Denied("session revoked or unknown")
        user = self._user(claims.user_id, fresh)
        owned = tuple(str(a) for a in user.get("accounts") or [])
        default = str(user.get("default_account_id") or (owned[0] if owned else ""))
        return Principal(claims.user_id, default, owned, roles_of(user), SCOPES, session_id=claims.session_id)

    def limits_context(self, principal: Principal, request: EdgeRequest) -> dict[str, str]:
        """The rate-limit verdict for the context: ``retry_after`` (0: allowed; else 429), and
        ``limits: unavailable`` when Redis cannot be asked for order entry (503 with
        ``Retry-After``: order entry fails closed). Every other route fails open: served without
        limits while Redis is down (logged)."""
        method, path = request.method, request.path
        try:
            wait = self.limiter().take(buckets(principal, method, path, request.source_ip, self.limits()))
        except LimiterUnavailable as exc:
            breaker = self.limiter().breaker.state
            if is_order_entry(method, path):
                self.logger.warning("rate limiter unavailable: order entry refused", extra={"breaker": breaker})
                return {"retry_after": str(exc.retry_after), "limits": "unavailable"}
            self.logger.warning("rate limiter unavailable: served without limits", extra={"breaker": breaker})
            return {"retry_after": "0"}
        return {"retry_after": "0" if wait <= 0 else str(max(1, math.ceil(wait)))}


# -- the public auth routes' limits and the admin's halts ---------------------------------------


class PublicRouteLimits:
    """Per source IP on ``register``, ``login`` and ``refresh``. Redis down: ``register`` fails
    closed (``LimiterUnavailable``: 503 with ``Retry-After``; nothing else bounds sign-ups);
    ``login`` and ``refresh`` fail open (logged), since the per-email lockout in DynamoDB still
    bounds password guessing and a refresh needs a valid refresh token."""

    def __init__(self, limiter: Callable[[], RateLimiter], limit: Callable[[], str], logger: Any) -> None:
        self.limiter = limiter
        self.limit = limit
        self.logger = logger

    def check(self, route: str, source_ip: str) -> None:
        if not source_ip:
            return
        try:
            self.limiter().check([Bucket(f"auth:{route}:ip:{source_ip}", Limit.parse(self.limit()))])
        except LimiterUnavailable:
            if route == "register":
                raise
            self.logger.warning("rate limiter unavailable: served without limits", extra={"route": route})


class TradingStatusPublisher(Protocol):
    def publish(self, symbol: str, halted: bool, reason: str) -> object: ...


class TradingHalts:
    """A halt or resume of a symbol: the instruments table first (it checks the symbol; order
    entry's pre-check reads it), then the command on the engine's journal. A failure of the
    second answers an error and the admin retries: both steps are idempotent (the engine ignores
    a halt of a halted symbol)."""

    def __init__(self, identity: IdentityService, journal: TradingStatusPublisher) -> None:
        self.identity = identity
        self.journal = journal

    def set_halt(self, principal: Principal, symbol: str, halted: bool, reason: str) -> dict[str, Any]:
        instrument = self.identity.set_halt(principal, symbol, halted, reason)
        self.journal.publish(symbol, halted, reason)
        return instrument
