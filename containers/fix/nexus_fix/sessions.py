"""The FIX sessions table: who may connect, for which accounts, with which settings.

One item per session (``FixSessionsTable``, key ``sender_comp_id`` + ``target_comp_id``, as the
counterparty writes them in SenderCompID (49) and TargetCompID (56): TargetCompID is the
gateway's own CompID). An item holds the accounts the session may act for, an optional Logon
password (553/554) stored only as an argon2id hash with the parameters user passwords use, and
per-session settings under QuickFIX's names (``SETTINGS``). Managed by ``nexus fix sessions``;
read by the gateway through ``SessionSource.get(sender, target)``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from nexus_common.dynamo import LazyTable, conditional_write, paginate
from nexus_common.events import iso, utc_now

COMP_ID: Final = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")
ACCOUNT_ID: Final = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_ACCOUNTS: Final = 20
PASSWORD_MIN: Final = 12
PASSWORD_MAX: Final = 128
# argon2id, OWASP's baseline: the same parameters as user passwords (nexus_auth.passwords).
ARGON2_TIME_COST: Final = 2
ARGON2_MEMORY_KIB: Final = 19456
ARGON2_PARALLELISM: Final = 1


def _yn(value: str) -> str:
    if value not in ("Y", "N"):
        raise ValueError("must be Y or N")
    return value


def _seconds(low: int, high: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if not value.isdigit() or not low <= int(value) <= high:
            raise ValueError(f"must be a whole number of seconds from {low} to {high}")
        return str(int(value))

    return check


# QuickFIX's setting names and meanings; the value is the default the gateway applies.
SETTINGS: Final[dict[str, tuple[str, Callable[[str], str]]]] = {
    "MinHeartBtInt": ("1", _seconds(1, 3600)),  # the lowest HeartBtInt (108) a Logon may ask for
    "MaxHeartBtInt": ("300", _seconds(1, 3600)),  # the highest
    "ResetOnLogon": ("N", _yn),
    "ResetOnLogout": ("N", _yn),
    "ResetOnDisconnect": ("N", _yn),
    "MaxLatency": ("120", _seconds(1, 86400)),  # SendingTime accuracy, seconds
    "CheckLatency": ("Y", _yn),
    "ValidateFieldsHaveValues": ("Y", _yn),
    "ValidateUserDefinedFields": ("Y", _yn),
}


class SessionError(ValueError):
    """A session definition the table refuses (bad CompID, account, setting or password)."""


def _hasher() -> PasswordHasher:
    return PasswordHasher(
        time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM, type=Type.ID
    )


def hash_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise SessionError(f"a session password has {PASSWORD_MIN} to {PASSWORD_MAX} characters")
    return str(_hasher().hash(password))


_DUMMY: list[str] = []


def verify_password(stored_hash: str | None, password: str | None) -> bool:
    """Whether ``password`` matches; the same argon2 work with no hash or no password (no
    timing tells whether a session has one). A password longer than the maximum is refused
    without hashing (a DoS guard)."""
    hasher = _hasher()
    if not _DUMMY:
        _DUMMY.append(hasher.hash("nexustrade fix dummy session password"))
    candidate = password or ""
    if len(candidate) > PASSWORD_MAX:
        return False
    try:
        ok = bool(hasher.verify(stored_hash or _DUMMY[0], candidate))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and stored_hash is not None and password is not None


@dataclass(frozen=True)
class SessionRecord:
    sender_comp_id: str  # the counterparty's CompID (its SenderCompID, 49)
    target_comp_id: str  # the gateway's CompID (the counterparty's TargetCompID, 56)
    accounts: tuple[str, ...]
    password_hash: str | None = None
    settings: Mapping[str, str] = field(default_factory=dict)
    created_at: str = ""

    @property
    def session_id(self) -> str:
        """The gateway's name of the session (its own CompID first, as QuickFIX names it)."""
        return f"FIX.4.4:{self.target_comp_id}->{self.sender_comp_id}"

    def setting(self, name: str) -> str:
        return self.settings.get(name, SETTINGS[name][0])

    def to_item(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "sender_comp_id": self.sender_comp_id,
            "target_comp_id": self.target_comp_id,
            "accounts": list(self.accounts),
            "settings": dict(self.settings),
            "created_at": self.created_at,
        }
        if self.password_hash:
            item["password_hash"] = self.password_hash
        return item

    @classmethod
    def from_item(cls, item: Mapping[str, Any]) -> SessionRecord:
        return cls(
            sender_comp_id=str(item["sender_comp_id"]),
            target_comp_id=str(item["target_comp_id"]),
            accounts=tuple(str(a) for a in item.get("accounts") or ()),
            password_hash=str(item["password_hash"]) if item.get("password_hash") else None,
            settings={str(k): str(v) for k, v in (item.get("settings") or {}).items()},
            created_at=str(item.get("created_at", "")),
        )

    def public(self) -> dict[str, Any]:
        """What ``nexus fix sessions list`` shows: never the hash, only whether there is one."""
        return {
            "session_id": self.session_id,
            "sender_comp_id": self.sender_comp_id,
            "target_comp_id": self.target_comp_id,
            "accounts": list(self.accounts),
            "password": self.password_hash is not None,
            "settings": {name: self.setting(name) for name in SETTINGS},
            "created_at": self.created_at,
        }


def new_session(
    sender: str,
    target: str,
    accounts: list[str],
    password: str | None = None,
    settings: Mapping[str, str] | None = None,
    now: datetime | None = None,
) -> SessionRecord:
    """A checked session definition (raises ``SessionError`` naming what is wrong)."""
    for what, comp_id in (("SenderCompID", sender), ("TargetCompID", target)):
        if not COMP_ID.match(comp_id):
            raise SessionError(f"{what} must be 1-32 letters, digits, '_', '.' or '-'")
    if not accounts or len(accounts) > MAX_ACCOUNTS:
        raise SessionError(f"a session acts for 1 to {MAX_ACCOUNTS} accounts")
    for account in accounts:
        if not ACCOUNT_ID.match(account):
            raise SessionError(f"not an account id: {account[:70]!r}")
    checked: dict[str, str] = {}
    for name, value in (settings or {}).items():
        if name not in SETTINGS:
            raise SessionError(f"unknown setting {name[:40]!r}; known: {', '.join(SETTINGS)}")
        try:
            checked[name] = SETTINGS[name][1](value)
        except ValueError as exc:
            raise SessionError(f"{name} {exc}") from None
    low = int(checked.get("MinHeartBtInt", SETTINGS["MinHeartBtInt"][0]))
    high = int(checked.get("MaxHeartBtInt", SETTINGS["MaxHeartBtInt"][0]))
    if low > high:
        raise SessionError("MinHeartBtInt must not exceed MaxHeartBtInt")
    return SessionRecord(
        sender_comp_id=sender,
        target_comp_id=target,
        accounts=tuple(dict.fromkeys(accounts)),
        password_hash=hash_password(password) if password is not None else None,
        settings=checked,
        created_at=iso(now or utc_now()),
    )


class DynamoSessions(LazyTable):
    """``FixSessionsTable``."""

    def add(self, record: SessionRecord) -> bool:
        """False when the session exists (remove it first: nothing is overwritten)."""
        return conditional_write(
            self.table.put_item, Item=record.to_item(), ConditionExpression="attribute_not_exists(sender_comp_id)"
        )

    def get(self, sender: str, target: str) -> SessionRecord | None:
        if not (COMP_ID.match(sender) and COMP_ID.match(target)):
            return None
        item = self.table.get_item(Key={"sender_comp_id": sender, "target_comp_id": target}, ConsistentRead=True).get(
            "Item"
        )
        return SessionRecord.from_item(item) if item else None

    def list(self) -> list[SessionRecord]:
        records = [SessionRecord.from_item(item) for item in paginate(self.table.scan)]
        return sorted(records, key=lambda r: (r.sender_comp_id, r.target_comp_id))

    def remove(self, sender: str, target: str) -> bool:
        return conditional_write(
            self.table.delete_item,
            Key={"sender_comp_id": sender, "target_comp_id": target},
            ConditionExpression="attribute_exists(sender_comp_id)",
        )
