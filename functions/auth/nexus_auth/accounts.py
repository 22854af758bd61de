"""Operator-made accounts: what ``nexus accounts create`` calls. No boto3 here: the store is
given (``nexus_auth.repo.DynamoAccountStore`` on DynamoDB).

    from nexus_auth.accounts import create_account
    from nexus_auth.repo import DynamoAccountStore
    store = DynamoAccountStore("nexus-local-accounts", "nexus-local-api-keys", "nexus-local-users")
    created = create_account("Alice", Decimal("100000.00"), store)
    created.account_id, created.api_key  # the key is shown once; only its hash is stored

Every account belongs to a user and every key to a user: the account, a user owning it (role
``trader``, no email or password: it acts through its keys until an operator links it) and its
first key (bound to the account, scopes ``read`` and ``trade``) are written in one DynamoDB
transaction, each conditional on not existing: all exist afterwards or none.
"""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Protocol

from nexus_common.errors import ValidationFailed
from nexus_common.events import iso, utc_now
from nexus_common.money import MoneyError, has_places, to_decimal

from nexus_auth.keys import generate_api_key, hash_api_key, key_id

MAX_NAME_LENGTH: Final = 100


@dataclass(frozen=True)
class CreatedAccount:
    account_id: str
    api_key: str  # the secret: shown once, never stored
    key_id: str
    user_id: str = ""

    def __repr__(self) -> str:  # keep the key out of logs and tracebacks
        return f"CreatedAccount(account_id={self.account_id!r}, key_id={self.key_id!r}, user_id={self.user_id!r})"


class AccountStore(Protocol):
    def create(self, user: dict[str, Any], account: dict[str, Any], api_key: dict[str, Any]) -> None:
        """Write the user, the account and its key item atomically; fail if any exists."""


def validate_name(name: object) -> str:
    if not isinstance(name, str):
        raise ValidationFailed("invalid_field", "name must be a string", "name")
    cleaned = " ".join(name.split())
    if not cleaned:
        raise ValidationFailed("invalid_field", "name must not be empty", "name")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValidationFailed(
            "invalid_field", f"name is longer than {MAX_NAME_LENGTH} characters", "name"
        )
    if any(unicodedata.category(char).startswith("C") for char in cleaned):
        raise ValidationFailed("invalid_field", "name has control characters", "name")
    return cleaned


def validate_cash(cash: object) -> Decimal:
    """Opening cash in USD: a decimal >= 0 with at most 2 decimal places (cents)."""
    try:
        amount = to_decimal(cash)
    except MoneyError as exc:
        raise ValidationFailed("invalid_field", str(exc), "cash") from None
    if amount < 0:
        raise ValidationFailed("invalid_field", "cash must not be negative", "cash")
    if not has_places(amount, 2):
        raise ValidationFailed("invalid_field", "cash has more than 2 decimal places", "cash")
    return amount.quantize(Decimal("0.01"))


def create_account(
    name: str, cash: Decimal, store: AccountStore, *, now: datetime | None = None
) -> CreatedAccount:
    """Create an active USD account with ``cash``, the user who owns it (role ``trader``, no
    password: an operator's account) and its first API key (scopes ``read`` and ``trade``)."""
    clean_name = validate_name(name)
    amount = validate_cash(cash)
    created_at = iso(now or utc_now())
    user_id = f"usr_{uuid.uuid4().hex}"
    account_id = f"acc_{uuid.uuid4().hex}"
    api_key = generate_api_key()
    user = {
        "user_id": user_id,
        "name": clean_name,
        "roles": ["trader"],
        "accounts": [account_id],
        "default_account_id": account_id,
        "status": "active",
        "created_at": created_at,
        "active_keys": 1,
    }
    account = {
        "account_id": account_id,
        "name": clean_name,
        "cash": amount,
        "currency": "USD",
        "status": "active",
        "created_at": created_at,
        "owner_user_id": user_id,
    }
    key_item = {
        "key_hash": hash_api_key(api_key),
        "key_id": key_id(api_key),
        "user_id": user_id,
        "account_id": account_id,
        "name": "first key",
        "scopes": ["read", "trade"],
        "status": "active",
        "created_at": created_at,
    }
    store.create(user, account, key_item)
    return CreatedAccount(account_id=account_id, api_key=api_key, key_id=key_id(api_key), user_id=user_id)
