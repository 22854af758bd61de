"""Data access of identity: users, API keys, login sessions, accounts, instruments (DynamoDB),
the signing-key secret (Secrets Manager) and halts on the engine's journal (Kinesis).

Tables (names from the template): ``UsersTable`` (``pk``: ``user#<id>`` / ``email#<email>`` /
``login#<sha256 of email>``), ``ApiKeysTable`` (``key_hash``; GSI ``by-user``), ``TokensTable``
(``pk``: ``family#<id>`` / ``used#<sha256 of a refresh token>``), ``AccountsTable``,
``InstrumentsTable``. Only hashes of credentials are ever written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from boto3.dynamodb.conditions import Key
from nexus_common import aws
from nexus_common.dynamo import LazyTable, conditional_write, paginate, transaction
from nexus_common.dynamo_batch import batch_get_tables
from nexus_common.errors import Conflict
from nexus_common.events import HaltCommand, ResumeCommand, utc_now


def _low_level(item: dict[str, Any]) -> dict[str, Any]:
    from boto3.dynamodb.types import TypeSerializer

    serializer = TypeSerializer()
    return {key: serializer.serialize(value) for key, value in item.items() if value is not None}


@dataclass(frozen=True)
class TableNames:
    users: str
    api_keys: str
    tokens: str
    accounts: str
    instruments: str = ""


class DynamoIdentityStore:
    """Every read and write of the auth service (see ``nexus_auth.domain.IdentityStore``); the
    authorizer reads keys, users and sessions through it too."""

    def __init__(self, names: TableNames) -> None:
        self.names = names
        self._users = LazyTable(names.users)
        self._keys = LazyTable(names.api_keys)
        self._tokens = LazyTable(names.tokens)
        self._accounts = LazyTable(names.accounts)
        self._instruments = LazyTable(names.instruments) if names.instruments else None

    # -- users -------------------------------------------------------------------------------

    def create_user(self, user: dict[str, Any], accounts: list[dict[str, Any]], key: dict[str, Any] | None) -> None:
        """User, email claim, its accounts (and a first key) in one transaction; ``Conflict``
        if the email is taken."""
        items: list[dict[str, Any]] = [
            {
                "Put": {
                    "TableName": self.names.users,
                    "Item": _low_level({**user, "pk": f"user#{user['user_id']}"}),
                    "ConditionExpression": "attribute_not_exists(pk)",
                }
            }
        ]
        if user.get("email"):
            items.append(
                {
                    "Put": {
                        "TableName": self.names.users,
                        "Item": _low_level({"pk": f"email#{user['email']}", "user_id": user["user_id"]}),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                }
            )
        for account in accounts:
            items.append(
                {
                    "Put": {
                        "TableName": self.names.accounts,
                        "Item": _low_level(account),
                        "ConditionExpression": "attribute_not_exists(account_id)",
                    }
                }
            )
        if key is not None:
            items.append(
                {
                    "Put": {
                        "TableName": self.names.api_keys,
                        "Item": _low_level(key),
                        "ConditionExpression": "attribute_not_exists(key_hash)",
                    }
                }
            )
        outcome = transaction(aws.client("dynamodb").transact_write_items, TransactItems=items)
        if outcome.any_refused:
            raise Conflict("email_taken", "email already registered")
        outcome.raise_if_cancelled()

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        item = self._users.table.get_item(Key={"pk": f"user#{user_id}"}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def user_id_by_email(self, email: str) -> str | None:
        item = self._users.table.get_item(Key={"pk": f"email#{email}"}, ConsistentRead=True).get("Item")
        return str(item["user_id"]) if item else None

    def update_user(self, user_id: str, values: dict[str, Any]) -> dict[str, Any]:
        names = {f"#f{i}": name for i, name in enumerate(values)}
        vals = {f":v{i}": value for i, value in enumerate(values.values())}
        sets = ", ".join(f"#f{i} = :v{i}" for i in range(len(values)))
        answer = self._users.table.update_item(
            Key={"pk": f"user#{user_id}"},
            UpdateExpression=f"SET {sets}",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=vals,
            ReturnValues="ALL_NEW",
        )
        return dict(answer["Attributes"])

    def add_account(self, user_id: str, account: dict[str, Any], max_accounts: int) -> None:
        """The account and its id on the user item, in one transaction, only while the user
        has fewer than ``max_accounts``; ``Conflict("limit_reached")`` otherwise."""
        outcome = transaction(
            aws.client("dynamodb").transact_write_items,
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.names.users,
                        "Key": {"pk": {"S": f"user#{user_id}"}},
                        "UpdateExpression": "SET accounts = list_append(accounts, :new)",
                        "ConditionExpression": "attribute_exists(pk) AND size(accounts) < :max",
                        "ExpressionAttributeValues": {
                            ":new": {"L": [{"S": account["account_id"]}]},
                            ":max": {"N": str(int(max_accounts))},
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": self.names.accounts,
                        "Item": _low_level(account),
                        "ConditionExpression": "attribute_not_exists(account_id)",
                    }
                },
            ]
        )
        if outcome.refused(0):
            raise Conflict("limit_reached", f"a user has at most {max_accounts} accounts")
        outcome.raise_if_cancelled()

    # -- failed logins -----------------------------------------------------------------------

    def get_login_state(self, email_digest: str) -> dict[str, Any] | None:
        item = self._users.table.get_item(Key={"pk": f"login#{email_digest}"}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def record_failure(self, email_digest: str, expires_at: int) -> int:
        """One more failed login; returns the count (atomic ``ADD``)."""
        answer = self._users.table.update_item(
            Key={"pk": f"login#{email_digest}"},
            UpdateExpression="ADD failures :one SET expires_at = :exp",
            ExpressionAttributeValues={":one": 1, ":exp": expires_at},
            ReturnValues="ALL_NEW",
        )
        return int(answer["Attributes"]["failures"])

    def lock(self, email_digest: str, locked_until: int, expires_at: int) -> None:
        self._users.table.put_item(
            Item={"pk": f"login#{email_digest}", "failures": 0, "locked_until": locked_until, "expires_at": expires_at}
        )

    def clear_failures(self, email_digest: str) -> None:
        self._users.table.delete_item(Key={"pk": f"login#{email_digest}"})

    # -- API keys ----------------------------------------------------------------------------

    def get_key(self, key_hash: str) -> dict[str, Any] | None:
        item = self._keys.table.get_item(Key={"key_hash": key_hash}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def get_key_and_user(self, key_hash: str, user_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """An API key and a user, consistent reads in one ``BatchGetItem``."""
        keys, users = self._keys.table, self._users.table
        reads = {keys: [{"key_hash": key_hash}], users: [{"pk": f"user#{user_id}"}]}
        found = batch_get_tables(reads, ConsistentRead=True)
        key_items, user_items = found[keys.name], found[users.name]
        return (dict(key_items[0]) if key_items else None), (dict(user_items[0]) if user_items else None)

    def put_key(self, item: dict[str, Any], max_active: int) -> None:
        """The key, and one more on its user's ``active_keys`` count, in one transaction, only
        while that count is below ``max_active``; ``Conflict("limit_reached")`` otherwise."""
        outcome = transaction(
            aws.client("dynamodb").transact_write_items,
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.names.users,
                        "Key": {"pk": {"S": f"user#{item['user_id']}"}},
                        "UpdateExpression": "SET active_keys = if_not_exists(active_keys, :zero) + :one",
                        "ConditionExpression": (
                            "attribute_exists(pk) AND (attribute_not_exists(active_keys) OR active_keys < :max)"
                        ),
                        "ExpressionAttributeValues": {
                            ":zero": {"N": "0"},
                            ":one": {"N": "1"},
                            ":max": {"N": str(int(max_active))},
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": self.names.api_keys,
                        "Item": _low_level(item),
                        "ConditionExpression": "attribute_not_exists(key_hash)",
                    }
                },
            ]
        )
        if outcome.refused(0):
            raise Conflict("limit_reached", f"a user has at most {max_active} active API keys")
        outcome.raise_if_cancelled()

    def count_active_keys(self, user_id: str, count: int) -> None:
        """Start a user's ``active_keys`` count (users from before it was kept) at ``count``."""
        conditional_write(  # refused: the user is gone, or its count is kept already
            self._users.table.update_item,
            Key={"pk": f"user#{user_id}"},
            UpdateExpression="SET active_keys = :n",
            ConditionExpression="attribute_exists(pk) AND attribute_not_exists(active_keys)",
            ExpressionAttributeValues={":n": count},
        )

    def keys_of(self, user_id: str) -> list[dict[str, Any]]:
        items = paginate(self._keys.table.query, IndexName="by-user", KeyConditionExpression=Key("user_id").eq(user_id))
        return [dict(i) for i in items]

    def revoke_key(self, key_hash: str, revoked_at: str, user_id: str) -> None:
        """Revoke an active key and free its place in its user's ``active_keys`` (one
        transaction; a key revoked already changes nothing)."""
        outcome = transaction(
            aws.client("dynamodb").transact_write_items,
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.names.api_keys,
                        "Key": {"key_hash": {"S": key_hash}},
                        "UpdateExpression": "SET #s = :revoked, revoked_at = :at",
                        "ConditionExpression": "attribute_exists(key_hash) AND #s = :active",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":revoked": {"S": "revoked"},
                            ":active": {"S": "active"},
                            ":at": {"S": revoked_at},
                        },
                    }
                },
                {
                    "Update": {
                        "TableName": self.names.users,
                        "Key": {"pk": {"S": f"user#{user_id}"}},
                        "UpdateExpression": "SET active_keys = active_keys - :one",
                        "ConditionExpression": "active_keys > :zero",
                        "ExpressionAttributeValues": {":one": {"N": "1"}, ":zero": {"N": "0"}},
                    }
                },
            ]
        )
        if outcome.refused(0):
            return  # revoked already
        if outcome.refused(1):  # no count kept for this user: revoke the key alone
            self._keys.table.update_item(
                Key={"key_hash": key_hash},
                UpdateExpression="SET #s = :revoked, revoked_at = :at",
                ConditionExpression="attribute_exists(key_hash)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":revoked": "revoked", ":at": revoked_at},
            )
            return
        outcome.raise_if_cancelled()

    # -- sessions (refresh-token families) ---------------------------------------------------

    def put_family(self, item: dict[str, Any]) -> None:
        self._tokens.table.put_item(
            Item={**item, "pk": f"family#{item['family_id']}"}, ConditionExpression="attribute_not_exists(pk)"
        )

    def get_family(self, family_id: str) -> dict[str, Any] | None:
        item = self._tokens.table.get_item(Key={"pk": f"family#{family_id}"}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def rotate_family(self, family_id: str, old_hash: str, new_hash: str, used_expires_at: int, at: str) -> bool:
        """Swap the family's valid refresh token, only if ``old_hash`` is still it; remember the old."""
        return transaction(
            aws.client("dynamodb").transact_write_items,
            TransactItems=[
                {
                    "Update": {
                        "TableName": self.names.tokens,
                        "Key": {"pk": {"S": f"family#{family_id}"}},
                        "UpdateExpression": "SET current_hash = :new, rotated_at = :at ADD rotations :one",
                        "ConditionExpression": "current_hash = :old AND #s = :active",
                        "ExpressionAttributeNames": {"#s": "status"},
                        "ExpressionAttributeValues": {
                            ":new": {"S": new_hash},
                            ":old": {"S": old_hash},
                            ":active": {"S": "active"},
                            ":at": {"S": at},
                            ":one": {"N": "1"},
                        },
                    }
                },
                {
                    "Put": {
                        "TableName": self.names.tokens,
                        "Item": _low_level(
                            {"pk": f"used#{old_hash}", "family_id": family_id, "expires_at": used_expires_at}
                        ),
                    }
                },
            ],
        ).applied

    def used_token_family(self, token_hash: str) -> str | None:
        item = self._tokens.table.get_item(Key={"pk": f"used#{token_hash}"}, ConsistentRead=True).get("Item")
        return str(item["family_id"]) if item else None

    def revoke_family(self, family_id: str, reason: str, at: str) -> None:
        self._tokens.table.update_item(
            Key={"pk": f"family#{family_id}"},
            UpdateExpression="SET #s = :revoked, revoked_reason = :reason, revoked_at = :at",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":revoked": "revoked", ":reason": reason, ":at": at},
        )

    # -- accounts and instruments (admin) ----------------------------------------------------

    def get_account(self, account_id: str) -> dict[str, Any] | None:
        item = self._accounts.table.get_item(Key={"account_id": account_id}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def set_trading_enabled(self, account_id: str, enabled: bool) -> bool:
        return conditional_write(
            self._accounts.table.update_item,
            Key={"account_id": account_id},
            # an admin's switch is the account's state from now on: a surveillance halt it
            # overrides (trading_halted_by, the alert id) can no longer be lifted by that alert
            UpdateExpression="SET trading_enabled = :on REMOVE trading_halted_by, trading_halted_at",
            ConditionExpression="attribute_exists(account_id)",
            ExpressionAttributeValues={":on": enabled},
        )

    def set_instrument_status(self, symbol: str, status: str) -> bool:
        if self._instruments is None:
            raise RuntimeError("no instruments table configured")
        return conditional_write(
            self._instruments.table.update_item,
            Key={"symbol": symbol},
            UpdateExpression="SET #s = :status",
            ConditionExpression="attribute_exists(symbol)",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":status": status},
        )


def secrets_manager_source(secret_arn: str) -> Any:
    """The ``KeyRing`` source of the signing-key secret: (``AWSCURRENT``, ``AWSPREVIOUS`` or None)."""

    def read() -> tuple[str, str | None]:
        client = aws.client("secretsmanager")
        current = str(client.get_secret_value(SecretId=secret_arn, VersionStage="AWSCURRENT")["SecretString"])
        try:
            previous: str | None = str(
                client.get_secret_value(SecretId=secret_arn, VersionStage="AWSPREVIOUS")["SecretString"]
            )
        except client.exceptions.ResourceNotFoundException:
            previous = None
        return current, previous

    return read


def secrets_manager_version(secret_arn: str) -> Any:
    """The ``KeyRing`` version marker of the signing-key secret: the id of the version staged
    ``AWSCURRENT`` (``DescribeSecret``: metadata only, the key is not read)."""

    def version() -> str:
        stages = aws.client("secretsmanager").describe_secret(SecretId=secret_arn).get("VersionIdsToStages") or {}
        return next((str(v) for v, names in stages.items() if "AWSCURRENT" in names), "")

    return version


def signing_key_ring(secret_arn: str) -> Any:
    """The ``KeyRing`` of the signing-key secret, which follows a rotation at once."""
    from nexus_auth.tokens import KeyRing

    return KeyRing(secrets_manager_source(secret_arn), version=secrets_manager_version(secret_arn))


def rotate_signing_key(secret_arn: str) -> str:
    """Put a new random signing key as ``AWSCURRENT`` (the old one becomes ``AWSPREVIOUS``);
    returns the new key's ``kid``."""
    from nexus_auth.tokens import kid_of

    client = aws.client("secretsmanager")
    key = str(client.get_random_password(PasswordLength=64, ExcludePunctuation=True)["RandomPassword"])
    client.put_secret_value(SecretId=secret_arn, SecretString=key)
    return kid_of(key)


# -- operator-made accounts (``nexus accounts create``) -------------------------------------


class DynamoAccountStore:
    """``AccountStore`` on the ``UsersTable``, ``AccountsTable`` and ``ApiKeysTable`` (physical names)."""

    def __init__(self, accounts_table: str, api_keys_table: str, users_table: str, client: Any = None) -> None:
        self.accounts_table = accounts_table
        self.api_keys_table = api_keys_table
        self.users_table = users_table
        self._client = client

    def create(self, user: dict[str, Any], account: dict[str, Any], api_key: dict[str, Any]) -> None:
        from boto3.dynamodb.types import TypeSerializer

        serializer = TypeSerializer()

        def low_level(item: dict[str, Any]) -> dict[str, Any]:
            return {key: serializer.serialize(value) for key, value in item.items()}

        client = self._client or aws.client("dynamodb")
        client.transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": self.users_table,
                        "Item": low_level({**user, "pk": f"user#{user['user_id']}"}),
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.accounts_table,
                        "Item": low_level(account),
                        "ConditionExpression": "attribute_not_exists(account_id)",
                    }
                },
                {
                    "Put": {
                        "TableName": self.api_keys_table,
                        "Item": low_level(api_key),
                        "ConditionExpression": "attribute_not_exists(key_hash)",
                    }
                },
            ]
        )

    def get_account(self, account_id: str) -> dict[str, Any] | None:
        item = (
            aws.dynamodb_table(self.accounts_table)
            .get_item(Key={"account_id": account_id}, ConsistentRead=True)
            .get("Item")
        )
        return dict(item) if item else None


class TradingStatusJournal:
    """A halt or a resume as a command on ``order-commands`` (partition key = the symbol).

    The command stream is the matching engine's journal: a halt that travels on it reaches the
    running engine in order with the symbol's orders, and every replay of the journal (a failover, a
    restart) halts at the same point, so it publishes the same events as the first run did. The
    instruments table's ``status`` stays the order entry API's pre-check.
    """

    def __init__(self, stream_name: str, clock: Callable[[], datetime] = utc_now, client: Any = None) -> None:
        self.stream_name = stream_name
        self.clock = clock
        self._client = client

    def publish(self, symbol: str, halted: bool, reason: str) -> HaltCommand | ResumeCommand:
        command_id = f"{'halt' if halted else 'resume'}-{uuid.uuid4().hex}"
        model = HaltCommand if halted else ResumeCommand
        command = model(command_id=command_id, symbol=symbol, reason=reason, ts=self.clock())
        client = self._client or aws.client("kinesis")
        client.put_record(
            StreamName=self.stream_name,
            Data=command.model_dump_json().encode("utf-8"),
            PartitionKey=symbol,
        )
        return command
