"""Funding: deposits and withdrawals of USD, as requests an admin approves, and as journal entries.

Pure domain (no boto3). A funding request moves cash between a trading account and the outside
world (the customer's bank):

* a user asks (``POST /v1/funding/deposits`` / ``withdrawals``): the request is ``pending``;
  an admin approves it (the cash moves) or rejects it (nothing moves). An operator's deposit or
  withdrawal (``nexus accounts deposit|withdraw``, the admin routes) is a request approved at once.
* ``request_id`` = ``fnd_`` + a digest of the account and the caller's ``client_request_id`` (the
  idempotency key): the same key asks once; asking again with the same terms answers the
  request as it stands, with other terms 409 ``idempotency_conflict``.
* approving writes, in one DynamoDB transaction (all or nothing, never twice): the request
  ``pending -> approved`` (condition: still pending), the account item's ``cash`` and
  ``available_cash`` (+ for a deposit, - for a withdrawal), and the journal entry
  ``funding:<request_id>``: the account's ``cash`` (settled USD) against the venue's ``bank``
  account (book ``house``: cash held for customers outside the venue, the contra of every
  funding movement). A retried approval finds the request approved and changes nothing.
* a withdrawal never exceeds the account's settled, unreserved cash: ``available_cash`` (cash
  less what open orders reserve) less the proceeds of sales not settled yet (``receivable``: the
  sum of the account's open settlement obligations that pay it cash). It is checked when asked
  (also counting the account's other pending withdrawals) and enforced by the condition of the
  account item's write when approved: ``available_cash >= amount + receivable AND cash = <cash
  read>``. Reservations take from ``available_cash`` with their own conditional write, so the
  two can never together take it below zero; the ``cash`` guard refuses the write when a fill
  moved cash after the receivable was read (the approval reads again, a few times).
* amounts are USD, positive, at most 2 decimal places (cents), at most ``MAX_AMOUNT``; parsed
  with ``nexus_common.money.to_decimal`` (no floats, no exponents beyond its bounds).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from nexus_common.errors import Conflict, NexusError, ValidationFailed
from nexus_common.events import iso
from nexus_common.money import MoneyError, fmt, has_places, to_decimal

from nexus_portfolio.ledger import HOUSE, USD, Entry, Leg, balanced

Kind = Literal["deposit", "withdrawal"]
Status = Literal["pending", "approved", "rejected"]

KINDS: Final = ("deposit", "withdrawal")
STATUSES: Final = ("pending", "approved", "rejected")
BANK: Final = "bank"  # the house's ledger account for cash outside the venue
MAX_AMOUNT: Final = Decimal("10000000.00")  # one movement, USD
CLIENT_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
REQUEST_ID: Final = re.compile(r"^fnd_[0-9a-f]{32}$")
MAX_PENDING: Final = 10  # pending requests per account: more is 409 limit_reached (the admins' queue stays short)
MAX_MEMO: Final = 200
ENTRY_PREFIX: Final = "funding:"


class InsufficientFunds(NexusError):
    """A withdrawal above the settled, unreserved cash: 422."""

    status = 422
    default_code = "insufficient_funds"


def parse_amount(value: object, field: str = "amount") -> Decimal:
    """A funding amount: USD, > 0, at most 2 dp, at most ``MAX_AMOUNT``; 400 naming ``field``."""
    try:
        amount = to_decimal(value)
    except MoneyError as exc:
        raise ValidationFailed("invalid_field", str(exc), field) from None
    if amount <= 0:
        raise ValidationFailed("invalid_field", "amount must be positive", field)
    if amount > MAX_AMOUNT:
        raise ValidationFailed("invalid_field", f"amount above the maximum of {fmt(MAX_AMOUNT)} USD", field)
    if not has_places(amount, 2):
        raise ValidationFailed("invalid_field", "amount has more than 2 decimal places (cents)", field)
    return amount.quantize(Decimal("0.01"))


def parse_client_request_id(value: object, field: str = "client_request_id") -> str:
    if not isinstance(value, str) or not CLIENT_ID.match(value):
        raise ValidationFailed(
            "invalid_field", "client_request_id: 1-64 characters of letters, digits and _ . : -", field
        )
    return value


def parse_memo(value: object, field: str = "memo") -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_MEMO or any(not ch.isprintable() for ch in value):
        raise ValidationFailed("invalid_field", f"memo: printable text of at most {MAX_MEMO} characters", field)
    return value.strip()


def request_id_for(account_id: str, client_request_id: str) -> str:
    """The request id of an account's idempotency key (deterministic: a retry finds its request)."""
    digest = hashlib.sha256(f"{account_id}\n{client_request_id}".encode()).hexdigest()
    return f"fnd_{digest[:32]}"


@dataclass(frozen=True)
class FundingRequest:
    request_id: str
    account_id: str
    kind: Kind
    amount: Decimal
    status: Status
    client_request_id: str
    requested_by: str
    requested_at: datetime
    memo: str = ""
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""

    @property
    def entry_id(self) -> str:
        return f"{ENTRY_PREFIX}{self.request_id}"

    @property
    def signed_amount(self) -> Decimal:
        """What the movement adds to the account's cash."""
        return self.amount if self.kind == "deposit" else -self.amount

    def same_terms(self, other: FundingRequest) -> bool:
        return (self.account_id, self.kind, self.amount) == (other.account_id, other.kind, other.amount)

    def approved(self, by: str, at: datetime) -> FundingRequest:
        return replace(self, status="approved", decided_by=by, decided_at=at)

    def rejected(self, by: str, at: datetime, reason: str) -> FundingRequest:
        return replace(self, status="rejected", decided_by=by, decided_at=at, reason=reason)

    def to_wire(self) -> dict[str, Any]:
        wire: dict[str, Any] = {
            "request_id": self.request_id,
            "account_id": self.account_id,
            "kind": self.kind,
            "amount": fmt(self.amount),
            "status": self.status,
            "client_request_id": self.client_request_id,
            "requested_by": self.requested_by,
            "requested_at": iso(self.requested_at),
            "memo": self.memo,
        }
        if self.decided_at is not None:
            wire.update(decided_by=self.decided_by, decided_at=iso(self.decided_at), reason=self.reason)
        if self.status == "approved":
            wire["entry_id"] = self.entry_id
        return wire


def new_request(
    *, account_id: str, kind: str, amount: object, client_request_id: object, memo: object, by: str, at: datetime
) -> FundingRequest:
    if kind not in KINDS:
        raise ValidationFailed("invalid_field", "kind must be deposit or withdrawal", "kind")
    client_id = parse_client_request_id(client_request_id)
    return FundingRequest(
        request_id=request_id_for(account_id, client_id),
        account_id=account_id,
        kind="deposit" if kind == "deposit" else "withdrawal",
        amount=parse_amount(amount),
        status="pending",
        client_request_id=client_id,
        requested_by=by,
        requested_at=at,
        memo=parse_memo(memo),
    )


def check_same_terms(asked: FundingRequest, existing: FundingRequest) -> FundingRequest:
    """The stored request when ``asked`` repeats it; 409 when the key was used for other terms."""
    if not asked.same_terms(existing):
        raise Conflict(
            "idempotency_conflict",
            f"client_request_id {asked.client_request_id!r} was used for another request ({existing.request_id})",
            "client_request_id",
        )
    return existing


def funding_entry(request: FundingRequest) -> Entry:
    """The journal entry of an approved request: the account's settled cash against the bank."""
    if request.status != "approved" or request.decided_at is None:
        raise ValueError(f"request {request.request_id} is not approved")
    signed = request.signed_amount
    return balanced(
        Entry(
            entry_id=request.entry_id,
            account_id=request.account_id,
            ts=request.decided_at,
            kind=request.kind,
            memo=f"{request.kind} {fmt(request.amount)} USD ({request.request_id})",
            legs=(
                Leg(request.account_id, "cash", USD, signed),
                Leg(HOUSE, BANK, USD, -signed),
            ),
        )
    )


@dataclass(frozen=True)
class AccountCash:
    """The account item's cash figures (``available_cash`` defaults to ``cash`` on an item that
    no reservation wrote yet)."""

    account_id: str
    cash: Decimal
    available_cash: Decimal
    status: str = "active"


def receivable(obligation_cash: list[Decimal]) -> Decimal:
    """Cash the account's unsettled trades will still pay it: the open obligations' positive
    cash (a purchase's payable is already out of trade-date cash, so it is not netted)."""
    return sum((cash for cash in obligation_cash if cash > 0), Decimal("0.00"))


def withdrawable(account: AccountCash, unsettled_proceeds: Decimal, pending_withdrawals: Decimal = Decimal(0),
                 ) -> Decimal:  # fmt: skip
    """Settled, unreserved cash less what pending withdrawals already ask for (never < 0)."""
    return max(account.available_cash - unsettled_proceeds - pending_withdrawals, Decimal("0.00"))


def check_withdrawal(amount: Decimal, available: Decimal) -> None:
    if amount > available:
        raise InsufficientFunds(
            "insufficient_funds",
            f"the withdrawal of {fmt(amount)} USD exceeds the {fmt(available)} USD of settled, unreserved cash",
            "amount",
        )
