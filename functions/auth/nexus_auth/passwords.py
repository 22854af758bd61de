"""Passwords: the policy a new password must meet, and argon2id hashing (argon2-cffi).

Parameters default to OWASP's argon2id baseline (19 MiB, 2 iterations, 1 lane); the template may
raise them. A hash made with weaker parameters is upgraded at the next successful login
(``needs_rehash``). ``verify`` of an unknown user runs against a dummy hash made with the same
parameters, so a wrong password and an unknown email cost the same time.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from nexus_common.errors import ValidationFailed

MIN_LENGTH: Final = 12
MAX_LENGTH: Final = 128  # characters; argon2 would take more, but a 1 MB "password" is a DoS
MIN_DISTINCT: Final = 5
COMMON: Final = frozenset(
    {
        "password1234",
        "password12345",
        "passwordpassword",
        "123456789012",
        "1234567890123",
        "qwertyuiopas",
        "qwerty123456",
        "iloveyou1234",
        "letmein12345",
        "adminadmin12",
        "welcome12345",
        "abc123abc123",
        "changeme1234",
        "nexustrade123",
        "trustno1trustno1",
    }
)


@dataclass(frozen=True)
class Argon2Params:
    time_cost: int = 2
    memory_kib: int = 19456
    parallelism: int = 1


def check_policy(password: object, email: str = "") -> str:
    """The password if it meets the policy, else ``ValidationFailed`` naming ``password``."""
    if not isinstance(password, str):
        raise ValidationFailed("invalid_field", "password must be a string", "password")
    if len(password) < MIN_LENGTH:
        raise ValidationFailed("weak_password", f"password must have at least {MIN_LENGTH} characters", "password")
    if len(password) > MAX_LENGTH:
        raise ValidationFailed("invalid_field", f"password must have at most {MAX_LENGTH} characters", "password")
    if any(unicodedata.category(char) in ("Cc", "Cs") for char in password):
        raise ValidationFailed("invalid_field", "password has control characters", "password")
    if len(set(password)) < MIN_DISTINCT:
        raise ValidationFailed(
            "weak_password", f"password must use at least {MIN_DISTINCT} distinct characters", "password"
        )
    lowered = password.lower()
    if lowered in COMMON:
        raise ValidationFailed("weak_password", "password is too common", "password")
    local_part = email.split("@", 1)[0].lower()
    if len(local_part) >= 4 and local_part in lowered:
        raise ValidationFailed("weak_password", "password must not contain the email address", "password")
    return password


class Passwords:
    """argon2id hashing and constant-effort verification."""

    def __init__(self, params: Argon2Params | None = None) -> None:
        p = params or Argon2Params()
        self._hasher = PasswordHasher(
            time_cost=p.time_cost, memory_cost=p.memory_kib, parallelism=p.parallelism, type=Type.ID
        )
        self._dummy = self._hasher.hash("nexustrade dummy password for unknown users")

    def hash(self, password: str) -> str:
        return self._hasher.hash(password)

    def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches ``stored_hash``; with no hash, the same work, False."""
        try:
            return bool(self._hasher.verify(stored_hash or self._dummy, password)) and stored_hash is not None
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        try:
            return bool(self._hasher.check_needs_rehash(stored_hash))
        except InvalidHashError:
            return True
