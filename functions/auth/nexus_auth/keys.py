"""API keys: generation, hashing and parsing. Pure functions; the key itself is never stored.

A key is ``nxk_`` + ``secrets.token_urlsafe(32)`` (43 URL-safe characters, 256 bits). The
``ApiKeysTable`` holds only ``sha256(key)`` as hex (its partition key ``key_hash``) and a short
display id, ``key_id`` = the first 8 characters after the prefix (``nxk_AbCdEfGh``), which does
not let anyone rebuild the key (the other 35 characters carry about 210 bits).
"""

from __future__ import annotations

import hashlib
import re
import secrets
from typing import Final

KEY_PREFIX: Final = "nxk_"
KEY_PATTERN: Final = re.compile(r"^nxk_[A-Za-z0-9_-]{43}$")
_BEARER: Final = re.compile(r"^\s*bearer\s+(\S+)\s*$", re.IGNORECASE)


def generate_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(api_key: str) -> str:
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def key_id(api_key: str) -> str:
    """The non-secret display id of a key: prefix + its first 8 characters."""
    return api_key[: len(KEY_PREFIX) + 8]


def is_well_formed(api_key: str) -> bool:
    return bool(KEY_PATTERN.match(api_key))


def bearer_key(authorization: str | None) -> str | None:
    """The well-formed API key of an ``Authorization: Bearer <key>`` header, else None."""
    if not authorization or len(authorization) > 512:
        return None
    match = _BEARER.match(authorization)
    if match is None:
        return None
    candidate = match.group(1)
    return candidate if is_well_formed(candidate) else None
