"""The closing run (daily closes from the 1d candles, every account's valuation with the day's
deposits and withdrawals) and the analytics WebSocket push (only to subscribers, throttled), under
moto with tables from the template; moto's Management API records what is posted."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import boto3
import pytest
from lambda_events import FakeLambdaContext, ws_event
from moto.apigatewaymanagementapi.models import apigatewaymanagementapi_backends
from nexus_analytics import on_close_schedule, on_positions_stream
from nexus_analytics.repo import DynamoPriceHistory, DynamoValuations
from nexus_analytics.synthetic import synthetic_history
from nexus_streaming import on_websocket_routes as routes
from ws_frames import posted

SESSION = date(2026, 3, 13)  # a Friday


def table(name: str) -> Any:
    return boto3.resource("dynamodb", region_name="us-east-1").Table(name)


def ledger_entry(account: str, ts: str, kind: str, amount: str) -> dict[str, Any]:
    return {
        "account_id": account,
        "entry_key": f"{ts}#e-{kind}-{ts}",
        "entry_id": f"e-{kind}-{ts}",
        "ts": ts,
        "kind": kind,
        "memo": kind,
        "legs": [
            {"book": account, "account": "cash", "asset": "USD", "amount": Decimal(amount)},
            {"book": "house", "account": "bank", "asset": "USD", "amount": -Decimal(amount)},
        ],
    }


@pytest.fixture
def closing(aws: Any) -> dict[str, str]:
    env = aws.use_function_env("ClosingFunction")
    for symbol in ("AAPL", "MSFT", "GOOGL"):
        table(env["INSTRUMENTS_TABLE"]).put_item(Item={"symbol": symbol})
    day = f"{SESSION.isoformat()}T00:00:00Z"

    def candle(close: str, last_seq: int) -> dict[str, Any]:
        return {"bucket": day, "open": Decimal("100"), "high": Decimal("310"), "low": Decimal("99"),
                "close": Decimal(close), "volume": Decimal(1500), "notional": Decimal(0), "trades": 3,
                "first_seq": 1, "last_seq": last_seq, "epoch": 0}  # fmt: skip

    candles = table(env["CANDLES_TABLE"])
    # AAPL's day candle closed (an item of its own: the next day's first trade closed it), beside
    # a live copy of it that counts fewer trades
    candles.put_item(Item={"series": "AAPL#1d", "symbol": "AAPL", "interval": "1d", **candle("101.50", 3)})
    candles.put_item(Item={"series": "AAPL#live", "bucket": "live", "symbol": "AAPL", "last_seq": 2,
                           "candles": {"1d": candle("99.00", 2)}})  # fmt: skip
    # MSFT's still live (in its live item), beside a copy of it that counts fewer trades
    candles.put_item(Item={"series": "MSFT#1d", "symbol": "MSFT", "interval": "1d", **candle("299.00", 2)})
    minute = {**candle("300.25", 3), "bucket": f"{SESSION.isoformat()}T20:59:00Z"}
    candles.put_item(Item={"series": "MSFT#live", "bucket": "live", "symbol": "MSFT", "last_seq": 3,
                           "candles": {"1d": candle("300.25", 3), "1m": minute}})  # fmt: skip
    DynamoPriceHistory(env["PRICE_HISTORY_TABLE"]).put_many(
        b for b in synthetic_history(SESSION - timedelta(days=1), ["GOOGL"], days=5)
    )
    table(env["ACCOUNTS_TABLE"]).put_item(Item={"account_id": "acc_1", "cash": Decimal("1000.00")})
    table(env["ACCOUNTS_TABLE"]).put_item(Item={"account_id": "acc_2", "cash": Decimal("500.00")})
    for symbol, quantity in (("AAPL", 10), ("GOOGL", 5)):
        table(env["POSITIONS_TABLE"]).put_item(Item={"account_id": "acc_1", "symbol": symbol, "quantity": quantity})
    ledger = table(env["LEDGER_TABLE"])
    ledger.put_item(Item=ledger_entry("acc_1", "2026-03-13T15:00:00.000000Z", "deposit", "200.00"))
    ledger.put_item(Item=ledger_entry("acc_1", "2026-03-13T16:00:00.000000Z", "withdrawal", "-50.00"))
    ledger.put_item(Item=ledger_entry("acc_1", "2026-03-13T17:00:00.000000Z", "fill", "-999.00"))
    ledger.put_item(Item=ledger_entry("acc_1", "2026-03-12T15:00:00.000000Z", "deposit", "7.00"))
    return env


def test_the_closing_run_stores_the_closes_and_each_account_valuation_with_its_flows(closing: dict[str, str]) -> None:
    # GIVEN 1d candles for AAPL (101.50, closed) and MSFT (300.25, live) on the session, GOOGL without trades
    # (its last stored close the day before), acc_1 with 10 AAPL and 5 GOOGL, a deposit of 200 and
    # a withdrawal of 50 on the session (a fill and the previous day's deposit are not flows)
    googl = DynamoPriceHistory(closing["PRICE_HISTORY_TABLE"]).last_close_on_or_before("GOOGL", SESSION)
    assert googl is not None
    # WHEN the run closes the session, then runs again
    report = on_close_schedule.handler({"as_of": "2026-03-13"}, FakeLambdaContext())
    again = on_close_schedule.handler({"as_of": "2026-03-13"}, FakeLambdaContext())
    # THEN the day's closes from the candles, and GOOGL valued at its last close
    assert (report["closes"], report["carried"], report["valuations"], report["unpriced"]) == (2, 1, 2, 0)
    assert again == report
    prices = DynamoPriceHistory(closing["PRICE_HISTORY_TABLE"])
    assert prices.closes("AAPL", SESSION, SESSION) == [(SESSION, Decimal("101.50"))]
    assert prices.bars("MSFT", SESSION, SESSION)[0].source == "candles"
    # (MSFT's from its live item: of two copies of a day's candle, the one that counts more trades)
    assert prices.closes("MSFT", SESSION, SESSION) == [(SESSION, Decimal("300.25"))]
    # AND each account's valuation: cash + positions x close, with the day's net flows
    stored = DynamoValuations(closing["VALUATIONS_TABLE"])
    (acc_1,) = stored.of_account("acc_1", SESSION, SESSION)
    assert acc_1.positions_value == Decimal("1015.00") + (5 * googl[1]).quantize(Decimal("0.01"))
    assert acc_1.equity == Decimal("1000.00") + acc_1.positions_value
    assert acc_1.flows == Decimal("150.00")
    (acc_2,) = stored.of_account("acc_2", SESSION, SESSION)
    assert (acc_2.equity, acc_2.flows) == (Decimal("500.00"), Decimal("0.00"))


def test_the_closing_run_skips_a_weekend_and_refuses_a_bad_date(closing: dict[str, str]) -> None:
    # GIVEN the run asked for a Saturday, then for a malformed date
    # WHEN it runs
    report = on_close_schedule.handler({"as_of": "2026-03-14"}, FakeLambdaContext())
    # THEN nothing is written on the Saturday, and the malformed date is refused
    assert (report["skipped"], report["closes"], report["valuations"]) == ("not a business day", 0, 0)
    assert DynamoValuations(closing["VALUATIONS_TABLE"]).of_account("acc_1", SESSION, SESSION + timedelta(2)) == []
    from nexus_common.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        on_close_schedule.handler({"as_of": "2026-3-14"}, FakeLambdaContext())


# -- the WebSocket push -----------------------------------------------------------------------------


def positions_batch(*accounts: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventID": f"r{i}",
                "eventName": "MODIFY",
                "eventSource": "aws:dynamodb",
                "dynamodb": {"Keys": {"account_id": {"S": a}, "symbol": {"S": "AAPL"}}, "SequenceNumber": str(i)},
            }
            for i, a in enumerate(accounts, start=1)
        ]
    }


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def push(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Clock:
    aws.use_function_env("StreamingRoutesFunction")
    for account in ("acc_1", "acc_2"):
        table(aws.table_name("AccountsTable")).put_item(Item={"account_id": account, "cash": Decimal("1000.00")})
        table(aws.table_name("PositionsTable")).put_item(Item={"account_id": account, "symbol": "AAPL", "quantity": 10})
    table(aws.table_name("TradesTable")).put_item(Item={"symbol": "AAPL", "seq": 1, "price": Decimal("100.00")})
    DynamoPriceHistory(aws.table_name("PriceHistoryTable")).put_many(
        synthetic_history(SESSION - timedelta(days=1), ["AAPL"], days=130)
    )
    ctx = FakeLambdaContext()
    assert routes.handler(ws_event("$connect", "conn-1", "acc_1"), ctx) == {"statusCode": 200}
    subscribe = {"action": "subscribe", "channel": "analytics"}
    assert routes.handler(ws_event("subscribe", "conn-1", "acc_1", subscribe), ctx) == {"statusCode": 200}
    assert routes.handler(ws_event("$connect", "conn-2", "acc_2"), ctx) == {"statusCode": 200}
    other = {"action": "subscribe", "channel": "analytics", "account_id": "acc_1"}
    routes.handler(ws_event("subscribe", "conn-2", "acc_2", other), ctx)
    aws.use_function_env("AnalyticsPushFunction")
    clock = Clock(datetime(2026, 3, 13, 18, 0, tzinfo=UTC))
    monkeypatch.setattr(on_positions_stream, "utc_now", clock)
    return clock


def test_the_summary_is_pushed_to_subscribers_at_most_once_per_interval(push: Clock) -> None:
    # GIVEN acc_1 subscribed to its analytics channel (acc_2 may not subscribe to acc_1's)
    refused = [m for m in posted("conn-2") if m.get("type") == "error"]
    assert refused and refused[-1]["error"]["code"] == "forbidden"
    # WHEN its positions change (two records, and acc_2's nobody listens to), then again 2 s later
    ctx = FakeLambdaContext()
    assert on_positions_stream.handler(positions_batch("acc_1", "acc_1", "acc_2"), ctx) == {"batchItemFailures": []}
    push.now += timedelta(seconds=2)
    on_positions_stream.handler(positions_batch("acc_1"), ctx)
    # THEN one summary, numbered 1, with the equity at the last trade and a 95 % VaR
    messages = [m for m in posted("conn-1") if m["type"] == "analytics"]
    assert [(m["channel"], m["seq"]) for m in messages] == [("analytics:acc_1", 1)]
    summary = messages[0]["summary"]
    assert Decimal(summary["equity"]) == Decimal("2000.00")
    assert Decimal(summary["var_95"]["var"]) > 0
    # AND once the interval has passed, the next change is pushed, numbered 2
    push.now += timedelta(seconds=5)
    on_positions_stream.handler(positions_batch("acc_1"), ctx)
    messages = [m for m in posted("conn-1") if m["type"] == "analytics"]
    assert [m["seq"] for m in messages] == [1, 2]
    assert not [m for m in posted("conn-2") if m["type"] == "analytics"]


def test_a_batch_reads_its_accounts_subscriber_counts_at_once_and_queries_only_a_listened_channel(
    push: Clock,
) -> None:
    from nexus_common import aws as nexus_aws

    # GIVEN acc_1 listening to its analytics channel, and acc_2 and acc_3 nobody listens to
    queried: list[str] = []
    counted: list[int] = []
    client = nexus_aws.resource("dynamodb").meta.client
    client.meta.events.register("before-parameter-build.dynamodb.Query", lambda params, **_: queried.append(
        str(params.get("ExpressionAttributeValues", {}).get(":pk"))))
    client.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", lambda params, **_: counted.append(
        sum(len(r["Keys"]) for r in params["RequestItems"].values())))
    # WHEN the three accounts' positions change in one batch
    batch = positions_batch("acc_2", "acc_1", "acc_3")
    assert on_positions_stream.handler(batch, FakeLambdaContext()) == {"batchItemFailures": []}
    # THEN the three channels' counts were read in one request, and only acc_1's was queried
    assert counted[0] == 3
    assert [pk for pk in queried if pk.startswith("SUB#")] == ["SUB#analytics:acc_1"]
    # AND acc_1's summary was pushed
    assert [m["channel"] for m in posted("conn-1") if m["type"] == "analytics"] == ["analytics:acc_1"]


def test_an_account_whose_summary_cannot_be_made_gets_an_error_and_the_others_their_summary(
    aws: Any, push: Clock
) -> None:
    # GIVEN acc_2 subscribed to its own channel, and acc_1 holding a symbol with neither a trade
    # nor a stored close
    ctx = FakeLambdaContext()
    own = {"action": "subscribe", "channel": "analytics"}
    aws.use_function_env("StreamingRoutesFunction")
    assert routes.handler(ws_event("subscribe", "conn-2", "acc_2", own), ctx) == {"statusCode": 200}
    aws.use_function_env("AnalyticsPushFunction")
    table(aws.table_name("PositionsTable")).put_item(Item={"account_id": "acc_1", "symbol": "ZZZZ", "quantity": 5})
    # WHEN both accounts' positions change in one batch
    answer = on_positions_stream.handler(positions_batch("acc_1", "acc_2"), ctx)
    # THEN the batch succeeds, acc_1's subscriber gets the error naming the symbol, and acc_2's
    # subscriber gets acc_2's summary
    assert answer == {"batchItemFailures": []}
    (failed,) = [m for m in posted("conn-1") if m["type"] == "analytics"]
    assert (failed["error"]["code"], failed["error"]["field"]) == ("no_price", "symbol")
    (served,) = [m for m in posted("conn-2") if m["type"] == "analytics"]
    assert served["channel"] == "analytics:acc_2" and Decimal(served["summary"]["equity"]) == Decimal("2000.00")


# -- the push re-checks each subscriber's credential ---------------------------------------------


class MonotonicClock:
    """The credential cache's clock (monotonic seconds): the test moves it past the bound."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


def identity(aws: Any) -> Any:
    """The auth service's own domain over its own tables (signing keys for login sessions)."""
    from nexus_auth.passwords import Passwords
    from nexus_auth.repo import DynamoIdentityStore, TableNames
    from nexus_auth.service import IdentityService
    from nexus_auth.tokens import KeyRing
    from nexus_common.audit import KinesisAuditSink

    names = TableNames(aws.table_name("UsersTable"), aws.table_name("ApiKeysTable"),
                       aws.table_name("TokensTable"), aws.table_name("AccountsTable"))
    ring = KeyRing(lambda: ("analytics-push-test-signing-key-0123456789abcdef", None))
    return IdentityService(DynamoIdentityStore(names), Passwords(), ring,
                           KinesisAuditSink(aws.stream_name("AuditEventsStream")))


def key_user(aws: Any, name: str) -> tuple[dict[str, str], str]:
    """A user with an account holding 10 AAPL and a first API key, made by the auth service's
    own domain and store; the authorizer context a WebSocket opened with that key carries, and
    the key's hash."""
    from nexus_common.identity import Principal

    user, account, key = identity(aws).create_user(
        email=None, password=None, name=name, now=datetime(2026, 3, 13, 9, 0, tzinfo=UTC),
        cash=Decimal("1000.00"), with_key=True,
    )
    assert key is not None
    account_id = str(account["account_id"])
    table(aws.table_name("PositionsTable")).put_item(Item={"account_id": account_id, "symbol": "AAPL", "quantity": 10})
    principal = Principal(
        user_id=str(user["user_id"]), account_id=account_id, accounts=(account_id,), roles=("trader",),
        scopes=("read", "trade"), key_id=str(key.item["key_id"]),
    )
    return {**principal.to_context(), "principalId": principal.user_id}, str(key.item["key_hash"])


def ws_with(route: str, connection_id: str, context: dict[str, str], body: Any = None) -> dict[str, Any]:
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": {"$connect": "CONNECT"}.get(route, "MESSAGE"),
            "connectionId": connection_id,
            "authorizer": context,
        },
        "body": json.dumps(body) if body is not None else None,
    }


def is_open(connection_id: str) -> bool:
    """moto forgets a deleted connection with what it received (a post would open it again)."""
    return connection_id in apigatewaymanagementapi_backends["123456789012"]["us-east-1"].connections


def test_a_revoked_key_gets_no_analytics_push_after_the_bound_and_is_closed(aws: Any, push: Clock) -> None:
    # GIVEN two users, each with a WebSocket opened with an API key and subscribed to its own
    # account's analytics channel, both served once (their credentials' answers cached)
    aws.use_function_env("StreamingRoutesFunction")
    doomed, doomed_hash = key_user(aws, "doomed")
    kept, _ = key_user(aws, "kept")
    ctx = FakeLambdaContext()
    for connection_id, context in (("conn-doomed", doomed), ("conn-kept", kept)):
        assert routes.handler(ws_with("$connect", connection_id, context), ctx) == {"statusCode": 200}
        subscribe = {"action": "subscribe", "channel": "analytics"}
        assert routes.handler(ws_with("subscribe", connection_id, context, subscribe), ctx) == {"statusCode": 200}
    aws.use_function_env("AnalyticsPushFunction")
    credential_clock = MonotonicClock()
    on_positions_stream.guard().check.clock = credential_clock
    batch = positions_batch(doomed["account_id"], kept["account_id"])
    on_positions_stream.handler(batch, ctx)
    assert [m["seq"] for m in posted("conn-doomed") if m["type"] == "analytics"] == [1]
    # WHEN the first user's key is revoked (what DELETE /v1/keys writes), nothing closes the
    # socket, and both the push interval and the credential cache's bound pass
    identity(aws).store.revoke_key(doomed_hash, "2026-03-13T18:00:01Z", doomed["user_id"])
    push.now += timedelta(seconds=on_positions_stream.settings().analytics_push_interval_seconds)
    credential_clock.now += on_positions_stream.settings().credential_cache_seconds
    on_positions_stream.handler(batch, ctx)
    # THEN the revoked key's socket gets no second summary (none is even numbered on its channel)
    # AND the push closed it and forgot it
    assert on_positions_stream.connections().current_seq(f"analytics:{doomed['account_id']}") == 1
    assert not is_open("conn-doomed")
    assert routes.store().get("conn-doomed") is None
    assert on_positions_stream.connections().subscribers(f"analytics:{doomed['account_id']}") == []
    # AND the valid key's socket gets both summaries, numbered 1 and 2
    assert [m["seq"] for m in posted("conn-kept") if m["type"] == "analytics"] == [1, 2]
    assert is_open("conn-kept")


def test_a_logged_out_session_gets_no_analytics_push_after_the_bound_and_is_closed(
    aws: Any, push: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    import jwt
    from nexus_common.identity import Principal

    # GIVEN a user logged in (a session, its lifetime from a fixed now that the credential check
    # also reads), a WebSocket opened with that session subscribed to the account's analytics
    # channel, and acc_1's own socket (conn-1, no recorded credential) on the same channel
    aws.use_function_env("StreamingRoutesFunction")
    service = identity(aws)
    now = datetime(2026, 3, 13, 17, 0, tzinfo=UTC)
    _, account, _ = service.create_user(
        email="push-logout@example.com", password="correct horse battery staple", name="logout", now=now,
    )
    account_id = str(account["account_id"])
    table(aws.table_name("PositionsTable")).put_item(Item={"account_id": account_id, "symbol": "AAPL", "quantity": 3})
    pair = service.login("push-logout@example.com", "correct horse battery staple", now)
    # the token's ids (the authorizer's work, whose checks are tested with auth): read, not verified
    claims = jwt.decode(pair.access_token, options={"verify_signature": False})
    principal = Principal(
        user_id=claims["sub"], account_id=account_id, accounts=(account_id,), roles=("trader",),
        scopes=("read", "trade"), session_id=claims["sid"],
    )
    context = {**principal.to_context(), "principalId": principal.user_id}
    ctx = FakeLambdaContext()
    monkeypatch.setattr(routes.guard().check, "wall_clock", now.timestamp)  # the session's expiry is read at now
    assert routes.handler(ws_with("$connect", "conn-session", context), ctx) == {"statusCode": 200}
    subscribe = {"action": "subscribe", "channel": "analytics"}
    assert routes.handler(ws_with("subscribe", "conn-session", context, subscribe), ctx) == {"statusCode": 200}
    aws.use_function_env("AnalyticsPushFunction")
    credential_clock = MonotonicClock()
    on_positions_stream.guard().check.clock = credential_clock
    monkeypatch.setattr(on_positions_stream.guard().check, "wall_clock", now.timestamp)
    on_positions_stream.handler(positions_batch(account_id, "acc_1"), ctx)
    assert [m["seq"] for m in posted("conn-session") if m["type"] == "analytics"] == [1]
    # WHEN the user logs out (no audit consumer runs) and the interval and the bound pass
    service.logout(principal, now)
    push.now += timedelta(seconds=on_positions_stream.settings().analytics_push_interval_seconds)
    credential_clock.now += on_positions_stream.settings().credential_cache_seconds
    on_positions_stream.handler(positions_batch(account_id, "acc_1"), ctx)
    # THEN the session's socket got nothing more and was closed
    assert on_positions_stream.connections().current_seq(f"analytics:{account_id}") == 1
    assert not is_open("conn-session")
    assert routes.store().get("conn-session") is None
    # AND acc_1's socket (a connection from before credentials were recorded) is still served
    assert [m["seq"] for m in posted("conn-1") if m["type"] == "analytics"] == [1, 2]
