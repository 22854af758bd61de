"""Access tokens (JWT, HS256, PyJWT) signed with keys kept in Secrets Manager; refresh tokens.

**Signing keys.** The secret ``SigningKeySecret`` (template; its value is generated when the
secret is provisioned and by ``nexus auth rotate-signing-key``, never written in code or config)
holds one random key. Secrets Manager keeps the value before the last rotation under the stage
``AWSPREVIOUS``: tokens are signed with ``AWSCURRENT`` and verified against both, so a rotation
logs nobody out (a token signed with the previous key lives at most ``ACCESS_TTL`` more). A key's
``kid`` (JWT header) is a digest of it, so it names the key without revealing it. A rotation takes
effect at once: before signing, the ring compares the secret's version marker (the version id
staged ``AWSCURRENT``, one ``DescribeSecret``, no secret value) with the one it loaded, and
re-reads the keys when it moved; an unknown ``kid`` does the same before it is refused.

**Access token** claims: ``iss``, ``aud``, ``sub`` (user id), ``sid`` (the session = refresh
family), ``iat``, ``nbf``, ``exp`` (15 minutes), ``jti``. Verification refuses any ``alg`` but
HS256 before looking at the signature (``none`` included), an unknown ``kid``, a bad signature,
a missing claim, the wrong issuer/audience, and a token outside ``[nbf, exp)``.

**Refresh token**: ``nxr_<family id>.<secret>``; only ``sha256`` of it is stored.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

import jwt

ALGORITHM: Final = "HS256"
ISSUER: Final = "nexustrade"
AUDIENCE: Final = "nexustrade-api"
REQUIRED_CLAIMS: Final = ("exp", "iat", "nbf", "sub", "sid", "iss", "aud", "jti")
REFRESH_PREFIX: Final = "nxr_"
_REFRESH: Final = re.compile(r"^nxr_([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$")
_JWT_SHAPE: Final = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
MAX_TOKEN_LENGTH: Final = 4096


class InvalidToken(Exception):
    """Any reason a token is not accepted (the reason is for logs; the client sees 401)."""


def kid_of(key: str) -> str:
    return hashlib.sha256(b"nexustrade-signing-key:" + key.encode("utf-8")).hexdigest()[:16]


def looks_like_jwt(credential: str) -> bool:
    return len(credential) <= MAX_TOKEN_LENGTH and bool(_JWT_SHAPE.match(credential))


@dataclass(frozen=True)
class SigningKey:
    kid: str
    key: str

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r})"


class KeyRing:
    """The current and previous signing keys, read from a source and cached for ``ttl`` seconds.

    ``source()`` returns ``(current, previous)`` key strings (``previous`` may be None).
    ``version()``, when given, returns a cheap marker of the source's current value (the secret's
    ``AWSCURRENT`` version id): ``current()`` checks it before every signature and re-reads the
    keys when it moved, so a rotation signs new tokens with the new key at once. An unknown
    ``kid`` makes the ring re-read its source when the marker moved (the marker read at most once
    a second), else at most once per ``min_refresh`` seconds.
    """

    def __init__(
        self,
        source: Callable[[], tuple[str, str | None]],
        ttl: float = 300.0,
        min_refresh: float = 5.0,
        version: Callable[[], str] | None = None,
    ) -> None:
        self._source = source
        self._version = version
        self._ttl = ttl
        self._min_refresh = min_refresh
        self._lock = threading.Lock()
        self._keys: dict[str, SigningKey] = {}
        self._current: SigningKey | None = None
        self._loaded_at = float("-inf")
        self._loaded_version: str | None = None
        self._marker_read_at = float("-inf")  # unknown kids read the marker at most once a second

    def _moved(self) -> bool:
        """True when the source's version marker differs from the loaded keys' (reads the marker)."""
        return self._version is not None and self._version() != self._loaded_version

    def _moved_lately(self) -> bool:
        """``_moved``, asked at most once a second: a flood of tokens with made-up kids costs at
        most one marker read per second, not one per token."""
        now = time.monotonic()
        if now - self._marker_read_at < 1.0:
            return False
        self._marker_read_at = now
        return self._moved()

    def _load(self) -> None:
        marker = self._version() if self._version is not None else None  # before the value: a
        # rotation between the two reads is seen as a move on the next check
        current, previous = self._source()
        if not current or len(current) < 32:
            raise RuntimeError("the signing key secret is empty or too short")
        keys = {kid_of(current): SigningKey(kid_of(current), current)}
        if previous and len(previous) >= 32:
            keys.setdefault(kid_of(previous), SigningKey(kid_of(previous), previous))
        self._keys = keys
        self._current = keys[kid_of(current)]
        self._loaded_at = time.monotonic()
        self._loaded_version = marker

    def current(self) -> SigningKey:
        """The key to sign with: the source's current one, re-read when its version moved."""
        with self._lock:
            if self._current is None or time.monotonic() - self._loaded_at > self._ttl or self._moved():
                self._load()
            assert self._current is not None
            return self._current

    def find(self, kid: str) -> SigningKey | None:
        with self._lock:
            if self._current is None or time.monotonic() - self._loaded_at > self._ttl:
                self._load()
            found = self._keys.get(kid)
            if found is None and (time.monotonic() - self._loaded_at > self._min_refresh or self._moved_lately()):
                self._load()
                found = self._keys.get(kid)
            return found


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    session_id: str
    token_id: str
    expires_at: int


def issue_access_token(ring: KeyRing, user_id: str, session_id: str, now: datetime, ttl: timedelta) -> str:
    key = ring.current()
    issued = int(now.timestamp())
    claims = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user_id,
        "sid": session_id,
        "iat": issued,
        "nbf": issued,
        "exp": issued + int(ttl.total_seconds()),
        "jti": uuid.uuid4().hex,
    }
    return jwt.encode(claims, key.key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": "JWT"})


def verify_access_token(ring: KeyRing, token: str, now: datetime | None = None) -> AccessClaims:
    """The claims of a valid access token, else ``InvalidToken``."""
    if not looks_like_jwt(token):
        raise InvalidToken("not a JWT")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise InvalidToken("unreadable header") from exc
    if header.get("alg") != ALGORITHM:  # refuses "none" and any algorithm confusion up front
        raise InvalidToken("algorithm not allowed")
    kid = header.get("kid")
    if not isinstance(kid, str) or not kid:
        raise InvalidToken("no kid")
    key = ring.find(kid)
    if key is None:
        raise InvalidToken("unknown kid")
    options: dict[str, Any] = {"require": list(REQUIRED_CLAIMS)}
    try:
        claims = jwt.decode(
            token,
            key.key,
            algorithms=[ALGORITHM],
            audience=AUDIENCE,
            issuer=ISSUER,
            options=options,
            leeway=0,
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(type(exc).__name__) from exc
    if now is not None:  # an explicit clock (tests, replays) is checked on top of PyJWT's own
        stamp = now.timestamp()
        if not int(claims["nbf"]) <= stamp < int(claims["exp"]):
            raise InvalidToken("outside its validity window")
    sub, sid = claims.get("sub"), claims.get("sid")
    if not isinstance(sub, str) or not isinstance(sid, str) or not sub or not sid:
        raise InvalidToken("bad subject or session")
    return AccessClaims(user_id=sub, session_id=sid, token_id=str(claims["jti"]), expires_at=int(claims["exp"]))


def new_family_id() -> str:
    return secrets.token_urlsafe(16)  # 22 characters


def new_refresh_token(family_id: str) -> str:
    return f"{REFRESH_PREFIX}{family_id}.{secrets.token_urlsafe(32)}"


def parse_refresh_token(token: object) -> str | None:
    """The family id of a well-formed refresh token, else None."""
    if not isinstance(token, str) or len(token) > 200:
        return None
    match = _REFRESH.match(token)
    return match.group(1) if match else None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()
