"""Funding rules in memory: amounts, idempotent requests and approvals, withdrawals bounded by
settled, unreserved cash, the journal entry against the bank. The store is an in-memory fake of
``FundingStore`` with the same conditions as the DynamoDB one. Tests read GIVEN / WHEN / THEN."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from nexus_common.audit import MemoryAuditSink
from nexus_common.errors import Conflict, NotFound, ValidationFailed
from nexus_portfolio.funding import (
    BANK,
    AccountCash,
    FundingRequest,
    InsufficientFunds,
    funding_entry,
    parse_amount,
    request_id_for,
)
from nexus_portfolio.funding_service import Applied, FundingService
from nexus_portfolio.ledger import HOUSE, Entry, balances

D = Decimal
T0 = datetime(2026, 3, 5, 15, 0, tzinfo=UTC)


class MemoryFundingStore:
    """``FundingStore`` in memory: the account items, open obligations and journal as dicts."""

    def __init__(self) -> None:
        self.requests: dict[str, FundingRequest] = {}
        self.accounts: dict[str, dict[str, Decimal]] = {}
        self.obligations: dict[str, list[Decimal]] = {}
        self.journal: dict[str, Entry] = {}
        self.before_approve: Any = None  # a concurrent writer, run just before the approval's write

    def add(self, request: FundingRequest) -> FundingRequest | None:
        if request.request_id in self.requests:
            return None
        self.requests[request.request_id] = request
        return request

    def get(self, request_id: str) -> FundingRequest | None:
        return self.requests.get(request_id)

    def of_account(self, account_id: str, limit: int) -> list[FundingRequest]:
        found = [r for r in self.requests.values() if r.account_id == account_id]
        return sorted(found, key=lambda r: r.requested_at, reverse=True)[:limit]

    def pending(self, limit: int) -> list[FundingRequest]:
        found = [r for r in self.requests.values() if r.status == "pending"]
        return sorted(found, key=lambda r: r.requested_at)[:limit]

    def account(self, account_id: str) -> AccountCash | None:
        item = self.accounts.get(account_id)
        if item is None:
            return None
        return AccountCash(account_id, item["cash"], item.get("available_cash", item["cash"]))

    def open_obligation_cash(self, account_id: str) -> list[Decimal]:
        return list(self.obligations.get(account_id, []))

    def approve(self, decided: FundingRequest, entry: Entry, seen_cash: Decimal | None, need: Decimal) -> Applied:
        if self.before_approve is not None:
            hook, self.before_approve = self.before_approve, None
            hook()
        if self.requests[decided.request_id].status != "pending" or entry.entry_id in self.journal:
            return Applied.NOT_PENDING
        item = self.accounts.get(decided.account_id)
        if item is None:
            return Applied.NO_ACCOUNT
        available = item.get("available_cash", item["cash"])
        if decided.kind == "withdrawal" and (item["cash"] != seen_cash or available < need):
            return Applied.REFUSED
        item.setdefault("opening_cash", item["cash"])
        item["cash"] += decided.signed_amount
        item["available_cash"] = available + decided.signed_amount
        self.requests[decided.request_id] = decided
        self.journal[entry.entry_id] = entry
        return Applied.APPLIED

    def reject(self, decided: FundingRequest) -> bool:
        if self.requests[decided.request_id].status != "pending":
            return False
        self.requests[decided.request_id] = decided
        return True


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def store() -> MemoryFundingStore:
    memory = MemoryFundingStore()
    memory.accounts["acc_1"] = {"cash": D("1000.00")}
    return memory


@pytest.fixture
def audit() -> MemoryAuditSink:
    return MemoryAuditSink()


@pytest.fixture
def funding(store: MemoryFundingStore, audit: MemoryAuditSink) -> FundingService:
    return FundingService(store, audit, Clock())


def ask(funding: FundingService, kind: str, amount: object, key: str = "k1") -> FundingRequest:
    request, _ = funding.request("acc_1", kind, amount, key, None, "usr_1")
    return request


# -- amounts ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["-5.00", "0", "0.00", "1.001", "12.345", "1e-3", "1E+400", "NaN", "-Infinity", "10000000.01", "", "abc",
     1.5, True, None, [], "1" * 50],
)
def test_an_amount_that_is_not_positive_cents_within_bounds_is_refused_naming_the_field(bad: object) -> None:
    # WHEN a funding amount is negative, zero, finer than a cent, out of bounds or not a decimal
    with pytest.raises(ValidationFailed) as refused:
        parse_amount(bad)
    # THEN it is a 400 naming the amount
    assert refused.value.status == 400 and refused.value.field == "amount"


def test_an_amount_in_cents_is_accepted_exactly() -> None:
    assert parse_amount("100") == D("100.00")
    assert parse_amount(D("0.01")) == D("0.01")
    assert parse_amount("1E+3") == D("1000.00")  # an exponent that stays whole cents is just a number
    assert parse_amount("10000000.00") == D("10000000.00")


# -- deposits --------------------------------------------------------------------------------


def test_a_deposit_waits_for_an_admin_then_moves_cash_once_with_a_balanced_entry_against_the_bank(
    funding: FundingService, store: MemoryFundingStore, audit: MemoryAuditSink
) -> None:
    # GIVEN a user asks to deposit 250.50
    request = ask(funding, "deposit", "250.50")
    # THEN it is pending and nothing moved
    assert request.status == "pending" and store.accounts["acc_1"]["cash"] == D("1000.00")
    assert [r.request_id for r in funding.pending()] == [request.request_id]
    # WHEN an admin approves it
    approved = funding.approve(request.request_id, "usr_admin")
    # THEN cash and available cash rise by the amount, opening cash stays what it was
    item = store.accounts["acc_1"]
    assert (item["cash"], item["available_cash"], item["opening_cash"]) == (D("1250.50"), D("1250.50"), D("1000.00"))
    # AND the journal holds one balanced entry: the account's settled cash against the house bank
    (entry,) = store.journal.values()
    assert entry.entry_id == f"funding:{request.request_id}" and entry.kind == "deposit" and not entry.imbalance()
    assert balances([entry]) == {("acc_1", "cash", "USD"): D("250.50"), (HOUSE, BANK, "USD"): D("-250.50")}
    assert approved.status == "approved" and approved.decided_by == "usr_admin" and funding.pending() == []
    # AND the request and the decision are on the audit trail
    assert [(e.kind, e.event_id) for e in audit.events] == [
        ("funding_requested", f"funding:{request.request_id}:pending"),
        ("funding_approved", f"funding:{request.request_id}:approved"),
    ]


def test_approving_twice_moves_cash_once_and_answers_the_approved_request(
    funding: FundingService, store: MemoryFundingStore
) -> None:
    # GIVEN an approved deposit
    request = ask(funding, "deposit", "100.00")
    first = funding.approve(request.request_id, "usr_admin")
    # WHEN it is approved again (a retried call, or a second admin)
    second = funding.approve(request.request_id, "usr_other_admin")
    # THEN the answer is the same approved request, and the cash moved once
    assert second == first
    assert store.accounts["acc_1"]["cash"] == D("1100.00") and len(store.journal) == 1


def test_a_retried_request_with_the_same_key_is_one_request_and_other_terms_are_a_conflict(
    funding: FundingService, store: MemoryFundingStore
) -> None:
    # GIVEN a deposit asked with key k1
    first, new = funding.request("acc_1", "deposit", "75.00", "k1", "salary", "usr_1")
    assert new and first.request_id == request_id_for("acc_1", "k1")
    # WHEN the same request is sent again
    again, new_again = funding.request("acc_1", "deposit", "75.00", "k1", "salary", "usr_1")
    # THEN it is the same request, stored once
    assert (again, new_again) == (first, False) and len(store.requests) == 1
    # WHEN the key is reused for another amount or kind
    for kind, amount in (("deposit", "76.00"), ("withdrawal", "75.00")):
        with pytest.raises(Conflict) as conflict:
            funding.request("acc_1", kind, amount, "k1", None, "usr_1")
        # THEN 409 idempotency_conflict, and nothing more is stored
        assert conflict.value.code == "idempotency_conflict"
    assert len(store.requests) == 1


def test_an_operator_deposit_is_approved_at_once_and_a_retry_moves_nothing_more(
    funding: FundingService, store: MemoryFundingStore
) -> None:
    # WHEN an operator deposits 500 with a request id, twice (the first answer was lost)
    first, moved = funding.move("acc_1", "deposit", "500", "ops-1", "wire", "operator")
    second, moved_again = funding.move("acc_1", "deposit", "500", "ops-1", "wire", "operator")
    # THEN the cash moved once
    assert moved and not moved_again and first == second and first.status == "approved"
    assert store.accounts["acc_1"]["cash"] == D("1500.00") and len(store.journal) == 1


def test_a_rejected_request_moves_nothing_and_cannot_be_approved(
    funding: FundingService, store: MemoryFundingStore
) -> None:
    request = ask(funding, "deposit", "100.00")
    # WHEN an admin rejects it without a reason, then with one
    with pytest.raises(ValidationFailed):
        funding.reject(request.request_id, "usr_admin", "  ")
    rejected = funding.reject(request.request_id, "usr_admin", "no matching wire")
    # THEN nothing moved; approving it now is a 409, and rejecting it again answers it
    assert rejected.status == "rejected" and store.accounts["acc_1"]["cash"] == D("1000.00")
    with pytest.raises(Conflict) as conflict:
        funding.approve(request.request_id, "usr_admin")
    assert conflict.value.code == "already_decided" and store.journal == {}
    assert funding.reject(request.request_id, "usr_admin", "again") == rejected


def test_an_unknown_request_or_account_is_404(funding: FundingService) -> None:
    for request_id in ("fnd_nope", "fnd_" + "0" * 32, "x" * 5000):
        with pytest.raises(NotFound):
            funding.approve(request_id, "usr_admin")
    with pytest.raises(NotFound) as missing:
        funding.request("acc_missing", "deposit", "1.00", "k", None, "usr_1")
    assert missing.value.code == "account_not_found"


# -- withdrawals -----------------------------------------------------------------------------


def test_a_withdrawal_above_settled_unreserved_cash_is_refused_when_asked_and_nothing_is_stored(
    funding: FundingService, store: MemoryFundingStore
) -> None:
    # GIVEN 1,000 cash of which open orders reserve 300, and 200 of sale proceeds not settled yet
    store.accounts["acc_1"]["available_cash"] = D("700.00")
    store.obligations["acc_1"] = [D("200.00"), D("-50.00")]  # a sale to receive, a purchase to pay
    # WHEN the user asks to withdraw 500.01 (withdrawable: 700 - 200 = 500)
    with pytest.raises(InsufficientFunds) as refused:
        ask(funding, "withdrawal", "500.01")
    # THEN 422 insufficient_funds naming the amount, and nothing is stored
    assert (refused.value.status, refused.value.field) == (422, "amount") and store.requests == {}
    # AND 500.00 is accepted; a second request counts the first one still pending
    ask(funding, "withdrawal", "500.00", "w1")
    with pytest.raises(InsufficientFunds):
        ask(funding, "withdrawal", "0.01", "w2")


def test_an_order_reserved_after_the_request_makes_the_approval_refuse_and_nothing_moves(
    funding: FundingService, store: MemoryFundingStore
) -> None:
    # GIVEN a pending withdrawal of 900 from 1,000 of cash
    request = ask(funding, "withdrawal", "900.00")
    # WHEN an order reserves 200 before the admin approves
    store.accounts["acc_1"]["available_cash"] = D("800.00")
    with pytest.raises(InsufficientFunds):
        funding.approve(request.request_id, "usr_admin")
    # THEN nothing moved and the request is still pending
    assert store.accounts["acc_1"]["cash"] == D("1000.00") and store.journal == {}
    assert store.requests[request.request_id].status == "pending"


def test_a_reservation_between_the_read_and_the_write_is_caught_by_the_write_condition(
    funding: FundingService, store: MemoryFundingStore
) -> None:
    # GIVEN a pending withdrawal of 900 from 1,000 of cash
    request = ask(funding, "withdrawal", "900.00")

    def reserve() -> None:  # an order reserves 200 after the approval read the account
        store.accounts["acc_1"]["available_cash"] = D("800.00")

    store.before_approve = reserve
    # WHEN the admin approves
    with pytest.raises(InsufficientFunds):
        funding.approve(request.request_id, "usr_admin")
    # THEN the conditional write refused it: cash never goes below what is reserved
    assert store.accounts["acc_1"] == {"cash": D("1000.00"), "available_cash": D("800.00")}
    assert store.journal == {}


def test_a_fill_between_the_read_and_the_write_makes_the_approval_read_again(
    funding: FundingService, store: MemoryFundingStore
) -> None:
    # GIVEN a pending withdrawal of 400 from 1,000 of cash
    request = ask(funding, "withdrawal", "400.00")

    def sell() -> None:  # a sale fills after the read: cash + 300, proceeds unsettled
        store.accounts["acc_1"]["cash"] += D("300.00")
        store.obligations["acc_1"] = [D("300.00")]

    store.before_approve = sell
    # WHEN the admin approves
    approved = funding.approve(request.request_id, "usr_admin")
    # THEN the first write was refused (cash moved), the second read counted the new proceeds
    assert approved.status == "approved"
    assert store.accounts["acc_1"]["cash"] == D("900.00")
    assert store.accounts["acc_1"]["available_cash"] == D("900.00")
    (entry,) = store.journal.values()
    assert balances([entry])[("acc_1", "cash", "USD")] == D("-400.00")


def test_the_entry_of_an_unapproved_request_cannot_be_made(funding: FundingService) -> None:
    request = ask(funding, "deposit", "1.00")
    with pytest.raises(ValueError):
        funding_entry(request)
    with pytest.raises(ValueError):
        funding_entry(replace(request, status="rejected"))



def test_an_account_keeps_at_most_ten_requests_waiting_and_a_retry_of_one_still_answers(
    funding: FundingService, store: MemoryFundingStore
) -> None:
    # GIVEN ten deposit requests waiting for an admin
    asked = [ask(funding, "deposit", "1.00", f"k{i}") for i in range(10)]
    # WHEN the user asks an eleventh time
    with pytest.raises(Conflict) as refused:
        ask(funding, "deposit", "1.00", "k10")
    # THEN 409 limit_reached and nothing is stored; a retry of a waiting one still answers it
    assert refused.value.code == "limit_reached" and len(store.requests) == 10
    assert ask(funding, "deposit", "1.00", "k3") == asked[3]
    # AND an operator's deposit, decided at once, is not held back by them
    moved, _ = funding.move("acc_1", "deposit", "5.00", "ops-1", None, "operator")
    assert moved.status == "approved"
    # AND once one is decided there is room again
    funding.approve(asked[0].request_id, "usr_admin")
    assert ask(funding, "deposit", "1.00", "k10").status == "pending"


# -- a property: whatever the interleaving, cash never goes below what is reserved ----------

CENTS = st.integers(min_value=1, max_value=500_00).map(lambda c: D(c) / 100)
STEPS = st.lists(
    st.tuples(st.sampled_from(["deposit", "withdraw", "reserve", "release", "sell", "settle"]), CENTS),
    min_size=1,
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps=STEPS)
def test_any_interleaving_of_funding_and_orders_keeps_cash_covered_and_the_ledger_in_step(
    steps: list[tuple[str, Decimal]],
) -> None:
    # GIVEN an account with 1,000 of cash
    store = MemoryFundingStore()
    store.accounts["acc_1"] = {"cash": D("1000.00")}
    funding = FundingService(store, MemoryAuditSink(), Clock())
    item = store.accounts["acc_1"]
    reserved = D(0)
    for i, (step, amount) in enumerate(steps):
        available = item.get("available_cash", item["cash"])
        # WHEN deposits, withdrawals (asked, then an order may reserve, then approved), order
        # reservations and releases, sales with unsettled proceeds and their settlement interleave
        if step == "deposit":
            funding.move("acc_1", "deposit", amount, f"d{i}", None, "operator")
        elif step == "withdraw":
            try:
                request, _ = funding.request("acc_1", "withdrawal", amount, f"w{i}", None, "usr_1")
            except InsufficientFunds:
                continue
            if reserved == 0 and available >= amount + D(1):  # an order takes some of it in between
                item["available_cash"] = available - D(1)
                reserved += D(1)
            try:
                funding.approve(request.request_id, "usr_admin")
            except InsufficientFunds:
                funding.reject(request.request_id, "usr_admin", "not covered")
            else:  # THEN an approved withdrawal took only settled cash that nothing reserved
                assert item["available_cash"] >= sum(store.obligations.get("acc_1", []), D(0))
        elif step == "reserve" and available >= amount:
            item["available_cash"] = available - amount
            reserved += amount
        elif step == "release" and reserved >= amount:
            item["available_cash"] = available + amount
            reserved -= amount
        elif step == "sell":  # proceeds: trade-date cash and buying power now, settled later
            item["cash"] += amount
            item["available_cash"] = available + amount
            store.obligations.setdefault("acc_1", []).append(amount)
        elif step == "settle":
            store.obligations["acc_1"] = []
        # THEN what is not reserved is never negative, and cash = unreserved + reserved
        available = item.get("available_cash", item["cash"])
        assert available >= 0 and available + reserved == item["cash"]
    # AND the account's cash moved by exactly what the funding entries and the sales moved
    funded = balances(store.journal.values()).get(("acc_1", "cash", "USD"), D(0))
    sold = sum((amount for step, amount in steps if step == "sell"), D(0))
    assert item["cash"] == D("1000.00") + funded + sold
    assert balances(store.journal.values()).get((HOUSE, BANK, "USD"), D(0)) == -funded
