"""Funding through the HTTP API under moto (tables from the template): users ask, admins approve
or reject, operators move cash; the orders API's reservations and the approval's conditional
write never take cash below what is reserved; reconciliation covers funding. GIVEN / WHEN / THEN."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from lambda_events import call, rest_event
from nexus_portfolio import funding_api
from nexus_portfolio.funding import request_id_for
from portfolio_fakes import TS, Money

from nexus.cli_money import reconcile_tables

D = Decimal
ADMIN = {"user_id": "usr_admin", "roles": "admin", "scopes": "read,trade"}
TRADER = {"user_id": "usr_1", "roles": "trader", "scopes": "read,trade"}


class Funding(Money):
    def __init__(self, aws: Any) -> None:
        super().__init__(aws)
        self.env.update(aws.use_function_env("FundingApiFunction"))

    def http(self, method: str, resource: str, body: Any = None, *, account: str = "acc_1",
             who: dict[str, str] = TRADER, query: dict[str, str] | None = None, raw: str | None = None,
             **path: str) -> tuple[int, Any]:  # fmt: skip
        event = rest_event(method, resource, body=body, raw_body=raw, account_id=account, query=query,
                           path_params=path or None)  # fmt: skip
        event["requestContext"]["authorizer"].update(accounts=account, **who)
        return call(funding_api.app, event)

    def ask(self, kind: str, amount: Any, key: str = "k1", account: str = "acc_1") -> tuple[int, Any]:
        return self.http("POST", f"/v1/funding/{kind}", {"amount": amount, "client_request_id": key},
                         account=account)  # fmt: skip

    def approve(self, request_id: str, who: dict[str, str] = ADMIN) -> tuple[int, Any]:
        return self.http("POST", "/v1/admin/funding/requests/{request_id}/approve", who=who, request_id=request_id)

    def move(self, kind: str, account: str, amount: str, key: str) -> tuple[int, Any]:
        """An admin's deposit or withdrawal (``kind``: deposits | withdrawals), approved at once."""
        return self.http("POST", f"/v1/admin/accounts/{{account_id}}/{kind}",
                         {"amount": amount, "client_request_id": key}, who=ADMIN, account_id=account)  # fmt: skip

    def ledger(self) -> list[dict[str, Any]]:
        return list(self.table("LEDGER_TABLE").scan()["Items"])

    def audit_records(self) -> list[dict[str, Any]]:
        stream = self.env["AUDIT_STREAM"]
        shard = self.kinesis.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
        iterator = self.kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                                   ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        return [json.loads(r["Data"]) for r in self.kinesis.get_records(ShardIterator=iterator)["Records"]]


@pytest.fixture
def world(aws: Any) -> Funding:
    return Funding(aws)


def test_a_new_user_funds_their_account_by_a_request_an_admin_approves_and_can_then_trade(world: Funding) -> None:
    # GIVEN a registered user's account with no cash
    world.account("acc_1", "0.00")
    status, body = world.post("acc_1", symbol="AAPL", side="buy", type="limit", quantity="1", price="100.00")
    assert (status, body["error"]["code"]) == (422, "insufficient_buying_power")
    # WHEN the user asks to deposit 5,000.00
    status, body = world.ask("deposits", "5000.00")
    # THEN the request is pending, and it is in the admins' queue and the user's list
    assert status == 201 and body["request"]["status"] == "pending", body
    request_id = body["request"]["request_id"]
    assert request_id == request_id_for("acc_1", "k1")
    _, queue = world.http("GET", "/v1/admin/funding/requests", who=ADMIN)
    assert [r["request_id"] for r in queue["requests"]] == [request_id]
    _, mine = world.http("GET", "/v1/funding/requests")
    assert [(r["request_id"], r["amount"]) for r in mine["requests"]] == [(request_id, "5000")]
    # WHEN an admin approves it
    status, body = world.approve(request_id)
    # THEN the cash is on the account item, in the ledger against the bank, and on the audit stream
    assert status == 200 and body["request"]["status"] == "approved", body
    item = world.item("acc_1")
    assert (item["cash"], item["available_cash"], item["opening_cash"]) == (D("5000.00"), D("5000.00"), D("0.00"))
    (entry,) = world.ledger()
    assert entry["entry_id"] == f"funding:{request_id}" and entry["kind"] == "deposit"
    assert {(leg["book"], leg["account"], leg["amount"]) for leg in entry["legs"]} == {
        ("acc_1", "cash", D("5000.00")), ("house", "bank", D("-5000.00"))}
    kinds = [(r["kind"], r["aggregate_id"], r["actor"]) for r in world.audit_records()
             if r["kind"].startswith("funding_")]  # (the refused order before is on it too)
    assert kinds == [("funding_requested", "acc_1", "usr_1"), ("funding_approved", "acc_1", "usr_admin")]
    # AND the queue is empty, the portfolio shows the cash, and the user can buy
    _, queue = world.http("GET", "/v1/admin/funding/requests", who=ADMIN)
    assert queue["requests"] == []
    _, portfolio = world.get("/v1/portfolio", "acc_1")
    assert portfolio["portfolio"]["cash"] == "5000"
    status, body = world.post("acc_1", symbol="AAPL", side="buy", type="limit", quantity="1", price="100.00")
    assert status == 202, body


def test_approving_twice_moves_the_cash_once(world: Funding) -> None:
    world.account("acc_1", "100.00")
    _, body = world.ask("deposits", "50.00")
    request_id = body["request"]["request_id"]
    first = world.approve(request_id)
    # WHEN the approval is sent again (its answer was lost)
    second = world.approve(request_id)
    # THEN the same answer, and one movement
    assert first == second and first[0] == 200
    assert world.item("acc_1")["cash"] == D("150.00") and len(world.ledger()) == 1


def test_a_retried_request_is_one_request_and_a_reused_key_with_other_terms_is_409(world: Funding) -> None:
    world.account("acc_1", "100.00")
    assert world.ask("deposits", "10.00")[0] == 201
    status, body = world.ask("deposits", "10.00")
    assert status == 200 and body["request"]["status"] == "pending"
    status, body = world.ask("deposits", "11.00")
    assert (status, body["error"]["code"], body["error"]["field"]) == (409, "idempotency_conflict",
                                                                       "client_request_id")  # fmt: skip
    assert len(world.table("FUNDING_TABLE").scan()["Items"]) == 1


def test_a_trader_cannot_approve_reject_list_or_move_cash_and_a_read_only_key_cannot_ask(world: Funding) -> None:
    world.account("acc_1", "100.00")
    _, body = world.ask("deposits", "50.00")
    request_id = body["request"]["request_id"]
    # WHEN a trader (or a compliance officer) calls the admin routes
    for who in (TRADER, {"user_id": "usr_c", "roles": "compliance", "scopes": "read"}):
        answers = [
            world.approve(request_id, who=who),
            world.http("POST", "/v1/admin/funding/requests/{request_id}/reject", {"reason": "x"}, who=who,
                       request_id=request_id),
            world.http("GET", "/v1/admin/funding/requests", who=who),
            world.http("POST", "/v1/admin/accounts/{account_id}/deposits",
                       {"amount": "1000000", "client_request_id": "self"}, who=who, account_id="acc_1"),
        ]  # fmt: skip
        # THEN 403 every time, and nothing moved
        assert [(s, b["error"]["code"]) for s, b in answers] == [(403, "forbidden")] * 4
    assert world.item("acc_1")["cash"] == D("100.00") and world.ledger() == []
    # AND an admin approving a request id that is not one is 404, never a 5xx
    status, body = world.approve("x" * 3000)
    assert (status, body["error"]["code"]) == (404, "request_not_found")
    # AND a read-only key cannot ask for money movements
    status, body = world.http("POST", "/v1/funding/withdrawals", {"amount": "1", "client_request_id": "r"},
                              who={"user_id": "usr_1", "roles": "trader", "scopes": "read"})  # fmt: skip
    assert (status, body["error"]["code"]) == (403, "insufficient_scope")


BAD_BODIES = [
    ({"amount": "-10.00", "client_request_id": "k"}, "amount"),
    ({"amount": "0", "client_request_id": "k"}, "amount"),
    ({"amount": "0.00", "client_request_id": "k"}, "amount"),
    ({"amount": "10.001", "client_request_id": "k"}, "amount"),
    ({"amount": "1e-9", "client_request_id": "k"}, "amount"),
    ({"amount": "1E+999999", "client_request_id": "k"}, "amount"),
    ({"amount": "NaN", "client_request_id": "k"}, "amount"),
    ({"amount": "10000000.01", "client_request_id": "k"}, "amount"),
    ({"amount": True, "client_request_id": "k"}, "amount"),
    ({"amount": "10.00", "client_request_id": "has space"}, "client_request_id"),
    ({"amount": "10.00", "client_request_id": ""}, "client_request_id"),
    ({"amount": "10.00"}, "client_request_id"),
    ({"amount": "10.00", "client_request_id": "k", "account_id": "acc_other"}, "account_id"),
    ({"amount": "10.00", "client_request_id": "k", "memo": "x" * 201}, "memo"),
]


def test_bad_input_is_a_400_naming_the_field_and_nothing_is_stored(world: Funding) -> None:
    # GIVEN an account with 100 of cash
    world.account("acc_1", "100.00")
    for body, field in BAD_BODIES:
        # WHEN a negative, zero, sub-cent, exponent-laden, out-of-bounds or malformed request is sent
        for route in ("/v1/funding/deposits", "/v1/funding/withdrawals"):
            status, answer = world.http("POST", route, body)
            # THEN 400 naming the field
            assert status == 400 and answer["error"]["field"] == field, (route, body, answer)
        status, answer = world.http("POST", "/v1/admin/accounts/{account_id}/deposits", body, who=ADMIN,
                                    account_id="acc_1")  # fmt: skip
        assert status == 400 and answer["error"]["field"] == field, (body, answer)
    # AND nothing was stored or moved
    assert world.table("FUNDING_TABLE").scan()["Items"] == [] and world.item("acc_1")["cash"] == D("100.00")


def test_malformed_json_and_a_json_float_number_are_handled_without_5xx(world: Funding) -> None:
    world.account("acc_1", "100.00")
    status, answer = world.http("POST", "/v1/funding/deposits", raw="{not json")
    assert (status, answer["error"]["code"]) == (400, "malformed_json")
    # a JSON number is read as an exact decimal (never a float)
    status, answer = world.http("POST", "/v1/funding/deposits", raw='{"amount": 12.34, "client_request_id": "n"}')
    assert status == 201 and answer["request"]["amount"] == "12.34"


def test_over_withdrawal_is_refused_when_asked_and_when_an_order_reserved_before_approval(world: Funding) -> None:
    # GIVEN 1,000 of cash
    world.account("acc_1", "1000.00")
    # WHEN the user asks to withdraw more than that
    status, body = world.ask("withdrawals", "1000.01")
    # THEN 422 insufficient_funds and nothing is stored
    assert (status, body["error"]["code"], body["error"]["field"]) == (422, "insufficient_funds", "amount")
    assert world.table("FUNDING_TABLE").scan()["Items"] == []
    # WHEN the user asks for 900, then places a buy that reserves about 500 before the approval
    status, body = world.ask("withdrawals", "900.00", key="w1")
    assert status == 201
    status, order = world.post("acc_1", symbol="AAPL", side="buy", type="limit", quantity="5", price="100.00")
    assert status == 202, order
    status, answer = world.approve(body["request"]["request_id"])
    # THEN the approval is refused: cash never goes below what the order reserved
    assert (status, answer["error"]["code"]) == (422, "insufficient_funds")
    item = world.item("acc_1")
    assert item["cash"] == D("1000.00") and item["available_cash"] == D("1000.00") - D("500.15")
    assert world.ledger() == []
    # AND an admin rejects it; the user asks for what is left, which is approved
    status, answer = world.http("POST", "/v1/admin/funding/requests/{request_id}/reject",
                                {"reason": "exceeds available cash"}, who=ADMIN,
                                request_id=body["request"]["request_id"])  # fmt: skip
    assert status == 200 and answer["request"]["status"] == "rejected"
    status, body = world.ask("withdrawals", "499.85", key="w2")
    assert status == 201, body
    status, answer = world.approve(body["request"]["request_id"])
    assert status == 200, answer
    item = world.item("acc_1")
    assert (item["cash"], item["available_cash"]) == (D("500.15"), D("0.00"))


def test_an_approved_withdrawal_refuses_the_order_it_would_leave_uncovered(world: Funding) -> None:
    world.account("acc_1", "1000.00")
    # WHEN an operator withdraws 600 (approved at once)
    status, body = world.move("withdrawals", "acc_1", "600.00", "ops-1")
    assert status == 201 and body["request"]["status"] == "approved", body
    # THEN a buy that needs more than the 400 left is refused by pre-trade risk
    status, body = world.post("acc_1", symbol="AAPL", side="buy", type="limit", quantity="5", price="100.00")
    assert (status, body["error"]["code"]) == (422, "insufficient_buying_power")
    # AND the operator's retry with the same id moves nothing more
    status, body = world.move("withdrawals", "acc_1", "600.00", "ops-1")
    assert status == 200 and world.item("acc_1")["cash"] == D("400.00") and len(world.ledger()) == 1


def test_unsettled_sale_proceeds_are_not_withdrawable(world: Funding) -> None:
    # GIVEN a seller with 100 of cash and 10 AAPL, who sells them at 100.00 (proceeds settle T+2)
    world.account("acc_s", "100.00", **{"pos#AAPL": D(10), "sellable#AAPL": D(10), "buying#AAPL": D(10)})
    world.account("acc_b", "5000.00")
    world.last_trade("AAPL", "100.00")
    assert world.post("acc_s", symbol="AAPL", side="sell", type="limit", quantity="10", price="100.00")[0] == 202
    assert world.post("acc_b", symbol="AAPL", side="buy", type="limit", quantity="10", price="100.00")[0] == 202
    sell, buy = sorted(world.orders(), key=lambda o: o["side"], reverse=True)
    world.consume(world.trade(("acc_s", sell["order_id"]), ("acc_b", buy["order_id"]), "100.00", "10", "buy",
                              "0", "0"))  # fmt: skip
    cash = world.item("acc_s")["cash"]
    assert cash == D("1100.00") - D("0.10")  # the proceeds less the maker fee, on trade date
    # WHEN the seller asks to withdraw more than the settled cash
    status, body = world.ask("withdrawals", "100.00", key="w", account="acc_s")
    # THEN 422: only 99.90 of settled cash is withdrawable before settlement
    assert (status, body["error"]["code"]) == (422, "insufficient_funds"), body
    status, body = world.ask("withdrawals", "99.90", key="w2", account="acc_s")
    assert status == 201, body
    # AND the portfolio shows what is withdrawable beside the settled and unsettled cash
    portfolio = world.get("/v1/portfolio", "acc_s")[1]["portfolio"]
    assert (portfolio["withdrawable"], portfolio["unsettled_cash"]) == ("99.9", "1000"), portfolio


def test_reconcile_covers_deposits_and_withdrawals_beside_trades(world: Funding) -> None:
    # GIVEN accounts funded by deposits (one created with opening cash), a trade, and a withdrawal
    world.account("acc_s", "0.00")
    world.account("acc_b", "1000.00", **{"pos#AAPL": D(0)})
    for account, amount, key in (("acc_s", "300.00", "d1"), ("acc_b", "2000.00", "d2")):
        status, body = world.move("deposits", account, amount, key)
        assert status == 201, body
    world.last_trade("AAPL", "100.00")
    assert world.post("acc_s", symbol="AAPL", side="sell", type="limit", quantity="2", price="100.00")[0] == 202
    assert world.post("acc_b", symbol="AAPL", side="buy", type="limit", quantity="2", price="100.00")[0] == 202
    sell, buy = sorted(world.orders(), key=lambda o: o["side"], reverse=True)
    for order in (sell, buy):
        world.table("ORDERS_TABLE").update_item(Key={"order_id": order["order_id"]}, UpdateExpression="SET #s = :s",
                                                ExpressionAttributeNames={"#s": "status"},
                                                ExpressionAttributeValues={":s": "filled"})  # fmt: skip
        world.table("ORDERS_TABLE").update_item(Key={"order_id": order["order_id"]},
                                                UpdateExpression="SET remaining_quantity = :z",
                                                ExpressionAttributeValues={":z": D(0)})  # fmt: skip
    world.table("TRADES_TABLE").put_item(Item={"symbol": "AAPL", "seq": 1, "price": D("100.00"), "quantity": D(2),
                                               "ts": TS})  # fmt: skip
    world.consume(world.trade(("acc_s", sell["order_id"]), ("acc_b", buy["order_id"]), "100.00", "2", "buy",
                              "0", "0", seq=1))  # fmt: skip
    status, body = world.move("withdrawals", "acc_b", "250.00", "w1")
    assert status == 201, body
    # WHEN reconciliation runs
    result = reconcile_tables(world.aws.table_name)
    # THEN it is clean, and its figures count the funding
    assert result.breaks == []
    assert (result.figures["deposits"], result.figures["withdrawals"]) == ("2300.00", "250.00")
    # WHEN an account's cash moves without a ledger entry (a deposit written around the service)
    world.table("ACCOUNTS_TABLE").update_item(Key={"account_id": "acc_s"}, UpdateExpression="SET cash = cash + :d",
                                              ExpressionAttributeValues={":d": D("50.00")})  # fmt: skip
    # AND an approved request's entry is missing
    (approved,) = [r for r in world.table("FUNDING_TABLE").scan()["Items"] if r["client_request_id"] == "w1"]
    world.table("LEDGER_TABLE").delete_item(Key={"account_id": "acc_b", "entry_key": next(
        e["entry_key"] for e in world.ledger() if e["entry_id"] == f"funding:{approved['request_id']}")})
    result = reconcile_tables(world.aws.table_name)
    # THEN both are breaks
    assert any(b.startswith("cash of acc_s") for b in result.breaks)
    assert f"withdrawal {approved['request_id']} of acc_b is approved but not in the ledger" in result.breaks


def test_the_operator_cli_deposits_withdraws_and_approves_once_per_request_id(
    world: Funding, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from nexus import cli_funding
    from nexus.cli import app

    # GIVEN the CLI pointed at the platform's tables (this test's moto, in process: no endpoint to
    # connect to), and an account with no cash
    monkeypatch.setattr(cli_funding, "_service", lambda: cli_funding.funding_service(world.aws.table_name))
    try:
        from nexus import platform as nexus_platform
    except ImportError:  # the CLI without the shared platform-connection module
        pass
    else:
        monkeypatch.setattr(nexus_platform, "connect", lambda *_: nexus_platform.Target("test", None, local=True))
    world.account("acc_1", "0.00")
    runner = CliRunner()

    def nexus(*args: str) -> tuple[int, Any]:
        result = runner.invoke(app, list(args))
        return result.exit_code, json.loads(result.stdout or result.stderr or "null")

    # WHEN an operator deposits 1,000.00 with a request id, twice (a retry)
    deposit = ("accounts", "deposit", "--account", "acc_1", "--amount", "1000.00", "--request-id", "wire-7")
    first, second = nexus(*deposit), nexus(*deposit)
    # THEN the cash moved once, and both answers are the approved request
    assert first == second and first[0] == 0 and first[1]["status"] == "approved"
    assert world.item("acc_1")["cash"] == D("1000.00") and len(world.ledger()) == 1
    # WHEN the operator withdraws more than the account holds, or a bad amount
    code, body = nexus("accounts", "withdraw", "--account", "acc_1", "--amount", "1000.01")
    assert (code, body["error"]["code"]) == (2, "insufficient_funds")
    code, body = nexus("accounts", "withdraw", "--account", "acc_1", "--amount", "-1")
    assert (code, body["error"]["field"]) == (2, "amount")
    # WHEN a user's withdrawal request is listed and approved from the CLI
    _, asked = world.ask("withdrawals", "400.00")
    code, listing = nexus("accounts", "funding-requests")
    assert code == 0 and [r["request_id"] for r in listing["requests"]] == [asked["request"]["request_id"]]
    code, approved = nexus("accounts", "approve", "--request", asked["request"]["request_id"])
    # THEN it moved, and rejecting it now is refused
    assert code == 0 and approved["status"] == "approved" and world.item("acc_1")["cash"] == D("600.00")
    code, body = nexus("accounts", "reject", "--request", asked["request"]["request_id"], "--reason", "late")
    assert (code, body["error"]["code"]) == (2, "already_decided")


def test_an_order_reserved_between_the_approvals_read_and_its_write_is_caught_by_dynamodb(
    world: Funding, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus_portfolio.funding_repo import DynamoFundingStore

    # GIVEN 1,000 of cash and a pending withdrawal of 900
    world.account("acc_1", "1000.00")
    _, body = world.ask("withdrawals", "900.00")
    request_id = body["request"]["request_id"]
    write = DynamoFundingStore.approve
    raced: list[int] = []

    def order_first(self: DynamoFundingStore, *args: Any) -> Any:
        if not raced:  # the orders API reserves ~500 after the approval read the account item
            raced.append(world.post("acc_1", symbol="AAPL", side="buy", type="limit", quantity="5",
                                    price="100.00")[0])  # fmt: skip
        return write(self, *args)

    monkeypatch.setattr(DynamoFundingStore, "approve", order_first)
    # WHEN the admin approves
    status, answer = world.approve(request_id)
    # THEN the order was accepted, and the transaction's condition refused the withdrawal
    assert raced == [202]
    assert (status, answer["error"]["code"]) == (422, "insufficient_funds")
    item = world.item("acc_1")
    assert item["cash"] == D("1000.00") and item["available_cash"] == D("499.85") and world.ledger() == []
    assert world.table("FUNDING_TABLE").get_item(Key={"request_id": request_id})["Item"]["status"] == "pending"


def test_the_funding_entry_reaches_the_audit_trail_on_its_account(world: Funding) -> None:
    from nexus_audit.records import from_ledger_change

    world.account("acc_1", "0.00")
    world.move("deposits", "acc_1", "10.00", "d1")
    (item,) = world.ledger()
    # WHEN the audit consumer maps the ledger stream's INSERT of the entry
    (entry,) = from_ledger_change("INSERT", "ev1", item, None, world_ts())
    # THEN it is an audit record of the account, with the entry's kind and legs
    assert (entry.aggregate_type, entry.aggregate_id, entry.kind) == ("account", "acc_1", "ledger_entry")
    assert entry.details["entry_kind"] == "deposit" and "house/bank/USD -10" in entry.details["legs"]


def world_ts() -> Any:
    from datetime import datetime

    return datetime.fromisoformat(TS.replace("Z", "+00:00"))


def test_nexus_accounts_create_books_the_opening_cash_as_a_deposit(
    world: Funding, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from nexus import platform as nexus_platform
    from nexus.cli import app

    # GIVEN the operator CLI pointed at this test's tables
    monkeypatch.setattr(nexus_platform, "connect", lambda *_: nexus_platform.Target("test", None, local=True))
    accounts = world.table("ACCOUNTS_TABLE")
    # WHEN an operator creates an account with 2,500.50 of opening cash
    done = CliRunner().invoke(app, ["accounts", "create", "--name", "Carol", "--cash", "2500.50"])
    # THEN it prints the account and its key, and the cash is a deposit in the ledger, audited
    assert done.exit_code == 0, done.output
    created = json.loads(done.stdout.splitlines()[0])
    item = world.item(created["account_id"])
    assert (item["cash"], item["available_cash"], item["opening_cash"]) == (D("2500.50"), D("2500.50"), D("0.00"))
    (entry,) = world.ledger()
    assert entry["account_id"] == created["account_id"] and entry["kind"] == "deposit"
    assert reconcile_tables(world.aws.table_name).breaks == []
    # WHEN the opening cash is not a USD amount in cents, THEN 2 and no account is created
    for bad in ("1.001", "-5", "1e-9", "10000000.01"):
        before = accounts.scan()["Count"]
        done = CliRunner().invoke(app, ["accounts", "create", "--name", "Dan", "--cash", bad])
        assert done.exit_code == 2 and '"field": "cash"' in done.output, (bad, done.output)
        assert accounts.scan()["Count"] == before
    # AND an account with no opening cash has no ledger entry
    done = CliRunner().invoke(app, ["accounts", "create", "--name", "Eve", "--cash", "0"])
    assert done.exit_code == 0 and len(world.ledger()) == 1
