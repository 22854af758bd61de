"""Auth: API keys, account creation (what `nexus accounts create` calls), and keys bound to
accounts through the REQUEST authorizer."""

from __future__ import annotations

import copy
import hashlib
import io
from decimal import Decimal
from typing import Any

import boto3
import pytest
from lambda_events import FakeLambdaContext, load_event
from nexus_auth import authorizer
from nexus_auth.accounts import CreatedAccount, create_account
from nexus_auth.keys import bearer_key, generate_api_key, hash_api_key, is_well_formed, key_id
from nexus_auth.repo import DynamoAccountStore
from nexus_common.errors import ValidationFailed

METHOD_ARN = "arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/api/POST/v1/orders"


def test_keys_are_random_well_formed_and_hashed() -> None:
    key = generate_api_key()
    assert is_well_formed(key) and key != generate_api_key()
    assert hash_api_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert key_id(key) == key[:12] and key_id(key).startswith("nxk_")


@pytest.mark.parametrize(
    "header",
    [None, "", "Bearer", "Basic abc", "Bearer nxk_short", "Bearer " + "x" * 47, "nxk_" + "a" * 43],
)
def test_garbled_authorization_headers_yield_no_key(header: str | None) -> None:
    assert bearer_key(header) is None


def test_bearer_scheme_is_case_insensitive() -> None:
    key = generate_api_key()
    assert bearer_key(f"bearer {key}") == key
    assert bearer_key(f"  Bearer   {key} ") == key


class FakeStore:
    def __init__(self) -> None:
        self.written: list[tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = []

    def create(self, user: dict[str, Any], account: dict[str, Any], api_key: dict[str, Any]) -> None:
        self.written.append((user, account, api_key))


def test_create_account_stores_only_the_hash_of_the_key() -> None:
    store = FakeStore()
    created = create_account("  Alice   Smith ", Decimal("1000"), store)
    ((user, account, key_item),) = store.written
    assert account["name"] == "Alice Smith" and account["cash"] == Decimal("1000.00")
    assert (account["currency"], account["status"]) == ("USD", "active")
    assert account["created_at"].endswith("Z")
    assert key_item["key_hash"] == hash_api_key(created.api_key)
    assert created.api_key not in str(store.written)
    assert created.api_key not in repr(created)
    # AND the account belongs to a trader user, and the key to that user and account
    assert user["accounts"] == [account["account_id"]] and user["roles"] == ["trader"]
    assert key_item["user_id"] == user["user_id"] == created.user_id
    assert key_item["account_id"] == account["account_id"] and key_item["scopes"] == ["read", "trade"]


@pytest.mark.parametrize(
    ("name", "cash", "field"),
    [
        ("", Decimal("1"), "name"),
        ("x" * 101, Decimal("1"), "name"),
        ("bell\x07", Decimal("1"), "name"),
        ("Bob", Decimal("-0.01"), "cash"),
        ("Bob", Decimal("1.001"), "cash"),
        ("Bob", 1.5, "cash"),
        ("Bob", "NaN", "cash"),
    ],
)
def test_create_account_validates_name_and_cash(name: str, cash: Any, field: str) -> None:
    store = FakeStore()
    with pytest.raises(ValidationFailed) as caught:
        create_account(name, cash, store)
    assert caught.value.field == field and store.written == []


@pytest.fixture
def created(edge: Any, aws: Any) -> CreatedAccount:
    store = DynamoAccountStore(
        aws.table_name("AccountsTable"), aws.table_name("ApiKeysTable"), aws.table_name("UsersTable")
    )
    account = create_account("Alice", Decimal("250000.50"), store)
    assert store.get_account(account.account_id)["cash"] == Decimal("250000.50")
    return account


def authorize(api_key: str | None, header: str = "Authorization") -> Any:
    event = copy.deepcopy(load_event("authorizer_request.json"))
    event["headers"] = {} if api_key is None else {header: f"Bearer {api_key}"}
    return authorizer.handler(event, FakeLambdaContext())


def test_a_valid_key_gets_an_allow_policy_for_the_whole_api(created: CreatedAccount) -> None:
    policy = authorize(created.api_key)
    assert policy == {
        "principalId": created.user_id,
        "policyDocument": {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Action": "execute-api:Invoke",
                    "Effect": "Allow",
                    "Resource": ["arn:aws:execute-api:us-east-1:123456789012:a1b2c3d4e5/api/*"],
                }
            ],
        },
        "context": {
            "user_id": created.user_id,
            "account_id": created.account_id,
            "accounts": created.account_id,
            "roles": "trader",
            "scopes": "read,trade",
            "key_id": created.key_id,
            "session_id": "",
            "retry_after": "0",
        },
    }
    assert authorize(created.api_key, header="authorization")["principalId"] == created.user_id


def test_a_key_from_before_users_still_authenticates_for_its_account(edge: Any, aws: Any) -> None:
    # GIVEN a key item written before keys belonged to users: only key_hash, key_id, account_id
    api_key = generate_api_key()
    boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("ApiKeysTable")).put_item(
        Item={"key_hash": hash_api_key(api_key), "key_id": key_id(api_key), "account_id": "acc_old",
              "status": "active", "created_at": "2026-01-01T00:00:00Z"}
    )
    # WHEN it is presented THEN it acts for its account, as a trader with read and trade
    context = authorize(api_key)["context"]
    assert context["account_id"] == "acc_old" and context["accounts"] == "acc_old"
    assert (context["user_id"], context["roles"], context["scopes"]) == ("legacy:acc_old", "trader", "read,trade")


def test_missing_garbled_unknown_and_revoked_keys_are_unauthorized(
    created: CreatedAccount, aws: Any
) -> None:
    for key in (None, "garbage", generate_api_key()):
        with pytest.raises(Exception, match=r"^Unauthorized$"):
            authorize(key)
    table = boto3.resource("dynamodb", region_name="us-east-1").Table(
        aws.table_name("ApiKeysTable")
    )
    table.update_item(
        Key={"key_hash": hash_api_key(created.api_key)},
        UpdateExpression="SET #s = :r",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":r": "revoked"},
    )
    with pytest.raises(Exception, match=r"^Unauthorized$"):
        authorize(created.api_key)


def test_the_authorizer_never_logs_the_key(created: CreatedAccount) -> None:
    stream = io.StringIO()
    authorizer.logger.logger_handler.setStream(stream)
    try:
        authorize(created.api_key)
        with pytest.raises(Exception, match="Unauthorized"):
            authorize(generate_api_key())
    finally:
        import sys

        authorizer.logger.logger_handler.setStream(sys.stdout)
    output = stream.getvalue()
    assert "allowed" in output and "denied" in output
    assert created.api_key not in output
    assert created.api_key[12:] not in output


def test_the_account_and_key_are_written_together(created: CreatedAccount, aws: Any) -> None:
    ddb = boto3.resource("dynamodb", region_name="us-east-1")
    accounts = ddb.Table(aws.table_name("AccountsTable")).scan()["Items"]
    keys = ddb.Table(aws.table_name("ApiKeysTable")).scan()["Items"]
    assert [a["account_id"] for a in accounts] == [created.account_id]
    assert [k["account_id"] for k in keys] == [created.account_id]
    assert [k["user_id"] for k in keys] == [created.user_id]
    assert keys[0]["key_id"] == created.key_id
    assert "api_key" not in keys[0]
