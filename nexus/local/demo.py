"""Demo data and operator actions against a running platform, through the services' own code."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, timedelta
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
    from nexus_auth.accounts import create_account as create
    from nexus_auth.repo import DynamoAccountStore
    from nexus_common.errors import NexusError

    store = DynamoAccountStore(table("AccountsTable"), table("ApiKeysTable"), table("UsersTable"))
    try:
        created = create(name, cash, store)
    except NexusError as exc:
        raise ValueError(exc.message) from exc
    return {"name": name, "account_id": created.account_id, "api_key": created.api_key}


def seed(table: Callable[[str], str]) -> list[dict[str, str]]:
    """The demo instruments (AAPL, MSFT, GOOGL, AMZN: tick 0.01, lot 1), two years of synthetic
    daily closes for them (``seed_price_history``) and two funded accounts."""
    from nexus_common.instruments import DEMO_INSTRUMENTS
    from nexus_marketdata.repo import put_instruments

    put_instruments(table("InstrumentsTable"), DEMO_INSTRUMENTS)
    seed_price_history(table)
    return [create_account(table, name, DEMO_CASH) for name in DEMO_ACCOUNTS]


def seed_price_history(table: Callable[[str], str], today: date | None = None) -> int:
    """Two years of synthetic, correlated daily closes of the demo symbols up to the last session
    before ``today`` (New York; default: now), deterministic for that day
    (``nexus_analytics.synthetic``), so every analytics figure has history on a fresh machine.
    A price history that already has the first demo symbol is left as it is (a restart on the same
    AWS endpoint keeps its closes, real or seeded); returns the closes written."""
    from nexus_analytics.repo import DynamoPriceHistory
    from nexus_analytics.synthetic import synthetic_history
    from nexus_common.calendar import exchange_date, is_business_day
    from nexus_common.events import utc_now
    from nexus_common.instruments import DEMO_INSTRUMENTS

    store = DynamoPriceHistory(table("PriceHistoryTable"))
    symbols = [instrument.symbol for instrument in DEMO_INSTRUMENTS]
    if store.has_symbol(symbols[0]):
        return 0
    end = (today or exchange_date(utc_now())) - timedelta(days=1)
    while not is_business_day(end):
        end -= timedelta(days=1)
    return int(store.put_many(synthetic_history(end, symbols)))


def seed_fix_sessions(
    table: Callable[[str], str], accounts: list[dict[str, str]], comp_id: str, address: str
) -> list[dict[str, object]]:
    """A FIX session per account (SenderCompID = the account's name in capitals, TargetCompID
    the gateway's), with a fresh random Logon password; what an initiator needs to connect."""
    import secrets

    from nexus_fix.sessions import DynamoSessions, new_session

    sessions = DynamoSessions(table("FixSessionsTable"))
    created: list[dict[str, object]] = []
    host, _, port = address.rpartition(":")
    for account in accounts:
        sender = account["name"].upper()
        password = secrets.token_urlsafe(18)
        sessions.remove(sender, comp_id)  # a demo restarted on the same AWS endpoint: a new password
        record = new_session(sender, comp_id, [account["account_id"]], password)
        sessions.add(record)
        created.append({"session_id": record.session_id, "sender_comp_id": sender, "target_comp_id": comp_id,
                        "account_id": account["account_id"], "password": password, "host": host,
                        "port": int(port)})  # fmt: skip
    return created
