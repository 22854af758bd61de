"""Demo data and operator actions against a running platform, through the services' own code."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Final

from nexus.local.provision import AwsClients, load

DEMO_CASH: Final = Decimal("1000000.00")
DEMO_ACCOUNTS: Final = ("alice", "bob")


def table_names(stage: str) -> Callable[[str], str]:
    """Physical table names of the running platform, read from the template (nothing created)."""
    import os

    clients = AwsClients(
        endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None, region=os.environ.get("AWS_REGION") or "us-east-1"
    )
    stack, _ = load(clients, create=False, parameters={"Stage": stage})

    def name(logical_id: str) -> str:
        return str(stack.find(logical_id).stack.ref(logical_id))

    return name


def create_account(table: Callable[[str], str], name: str, cash: Decimal) -> dict[str, str]:
    from nexus_auth.accounts import DynamoAccountStore
    from nexus_auth.accounts import create_account as create
    from nexus_common.errors import NexusError

    store = DynamoAccountStore(table("AccountsTable"), table("ApiKeysTable"), table("UsersTable"))
    try:
        created = create(name, cash, store)
    except NexusError as exc:
        raise ValueError(exc.message) from exc
    return {"name": name, "account_id": created.account_id, "api_key": created.api_key}


def seed(table: Callable[[str], str]) -> list[dict[str, str]]:
    """The demo instruments (AAPL, MSFT, GOOGL, AMZN: tick 0.01, lot 1) and two funded accounts."""
    from nexus_common.instruments import DEMO_INSTRUMENTS
    from nexus_marketdata.instruments import put_instruments

    put_instruments(table("InstrumentsTable"), DEMO_INSTRUMENTS)
    return [create_account(table, name, DEMO_CASH) for name in DEMO_ACCOUNTS]
