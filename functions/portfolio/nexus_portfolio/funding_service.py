"""The funding service: users ask for deposits and withdrawals, admins approve or reject them,
operators move cash directly (see ``nexus_portfolio.funding`` for the rules).

The store (``FundingStore``) is the port: ``FundingRequestsTable`` for the requests, the account
item, the account's open settlement obligations, and the one transaction that approves.
Decisions are published on the audit trail (``funding_requested`` / ``funding_approved`` /
``funding_rejected`` on the account, event id ``funding:<request_id>:<status>``, so a retry
publishes nothing new); the journal entry reaches it from the ledger stream.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Final, Protocol

from nexus_common.audit import AuditEvent, AuditSink
from nexus_common.errors import Conflict, NotFound, ValidationFailed
from nexus_common.events import utc_now

from nexus_portfolio.funding import (
    MAX_PENDING,
    REQUEST_ID,
    AccountCash,
    FundingRequest,
    check_same_terms,
    check_withdrawal,
    funding_entry,
    new_request,
    parse_memo,
    receivable,
    withdrawable,
)
from nexus_portfolio.ledger import Entry

APPROVE_ATTEMPTS: Final = 3  # reads of the account when fills keep moving its cash
MAX_LIST: Final = 100


class Applied(Enum):
    APPLIED = "applied"
    NOT_PENDING = "not_pending"  # decided before (a retried approval, or a concurrent decision)
    NO_ACCOUNT = "no_account"
    REFUSED = "refused"  # the account item's condition: cash moved, or not enough available


class FundingStore(Protocol):
    def add(self, request: FundingRequest) -> FundingRequest | None:
        """Store a new pending request; None when its id exists already (nothing written)."""

    def get(self, request_id: str) -> FundingRequest | None: ...

    def of_account(self, account_id: str, limit: int) -> list[FundingRequest]:
        """The account's requests, newest first."""

    def pending(self, limit: int) -> list[FundingRequest]:
        """Pending requests of every account, oldest first (the admins' queue)."""

    def account(self, account_id: str) -> AccountCash | None: ...

    def open_obligation_cash(self, account_id: str) -> list[Decimal]:
        """Signed cash of the account's settlement obligations not settled yet."""

    def approve(self, decided: FundingRequest, entry: Entry, seen_cash: Decimal | None, need: Decimal) -> Applied:
        """All or nothing: the request pending -> approved, the account's cash and available cash
        moved by the entry's amount (a withdrawal only while ``available_cash >= need`` and
        ``cash = seen_cash``), the journal entry posted."""

    def reject(self, decided: FundingRequest) -> bool:
        """The request pending -> rejected; False when it was not pending."""


class FundingService:
    def __init__(self, store: FundingStore, audit: AuditSink, clock: Callable[[], datetime] = utc_now) -> None:
        self.store = store
        self.audit = audit
        self.clock = clock

    # -- users ------------------------------------------------------------------------------

    def request(
        self, account_id: str, kind: str, amount: object, client_request_id: object, memo: object, by: str,
        *, capped: bool = True,
    ) -> tuple[FundingRequest, bool]:  # fmt: skip
        """Ask for a deposit or a withdrawal; returns (the request, whether it is new). A
        withdrawal above what is withdrawable now (less the other pending withdrawals) is
        refused (422) and nothing is stored; so is a request beyond ``MAX_PENDING`` waiting ones
        (409), unless not ``capped`` (an operator's, decided at once)."""
        asked = new_request(account_id=account_id, kind=kind, amount=amount, client_request_id=client_request_id,
                            memo=memo, by=by, at=self.clock())  # fmt: skip
        existing = self.store.get(asked.request_id)
        if existing is not None:
            return check_same_terms(asked, existing), False
        account = self._account(account_id)
        pending = [r for r in self.store.of_account(account_id, MAX_LIST) if r.status == "pending"]
        if capped and len(pending) >= MAX_PENDING:
            raise Conflict("limit_reached", f"the account has {len(pending)} requests waiting for an admin already")
        if asked.kind == "withdrawal":
            others = sum((r.amount for r in pending if r.kind == "withdrawal"), Decimal(0))
            proceeds = receivable(self.store.open_obligation_cash(account_id))
            check_withdrawal(asked.amount, withdrawable(account, proceeds, others))
        stored = self.store.add(asked)
        if stored is None:  # the same key raced us: answer the one that was stored
            raced = self.store.get(asked.request_id)
            if raced is None:
                raise Conflict("conflict", "the request is being written; retry")
            return check_same_terms(asked, raced), False
        self._publish(asked, "funding_requested", by)
        return asked, True

    def of_account(self, account_id: str) -> list[FundingRequest]:
        return self.store.of_account(account_id, MAX_LIST)

    # -- admins -----------------------------------------------------------------------------

    def pending(self) -> list[FundingRequest]:
        return self.store.pending(MAX_LIST)

    def get(self, request_id: str) -> FundingRequest:
        found = self.store.get(request_id) if REQUEST_ID.match(request_id) else None
        if found is None:
            raise NotFound("request_not_found", "no such funding request", "request_id")
        return found

    def approve(self, request_id: str, by: str) -> FundingRequest:
        """Move the cash; approving an approved request again changes nothing and answers it."""
        request = self.get(request_id)
        for _ in range(APPROVE_ATTEMPTS):
            if request.status != "pending":
                return self._decided_already(request, "approved")
            account = self._account(request.account_id)
            seen_cash: Decimal | None = None
            need = request.amount
            if request.kind == "withdrawal":
                proceeds = receivable(self.store.open_obligation_cash(request.account_id))
                check_withdrawal(request.amount, withdrawable(account, proceeds))
                seen_cash, need = account.cash, request.amount + proceeds
            decided = request.approved(by, self.clock())
            outcome = self.store.approve(decided, funding_entry(decided), seen_cash, need)
            if outcome is Applied.APPLIED:
                self._publish(decided, "funding_approved", by)
                return decided
            if outcome is Applied.NO_ACCOUNT:
                raise NotFound("account_not_found", f"no account {request.account_id}", "account_id")
            request = self.get(request_id)  # decided meanwhile, or the account moved: read again
        raise Conflict("account_busy", "the account's cash kept changing while approving; retry")

    def reject(self, request_id: str, by: str, reason: object) -> FundingRequest:
        text = parse_memo(reason, "reason")
        if not text:
            raise ValidationFailed("missing_field", "a rejection needs a reason", "reason")
        request = self.get(request_id)
        if request.status == "pending":
            decided = request.rejected(by, self.clock(), text)
            if self.store.reject(decided):
                self._publish(decided, "funding_rejected", by)
                return decided
            request = self.get(request_id)
        return self._decided_already(request, "rejected")

    # -- operators --------------------------------------------------------------------------

    def move(self, account_id: str, kind: str, amount: object, client_request_id: object, memo: object,
             by: str) -> tuple[FundingRequest, bool]:  # fmt: skip
        """An operator's deposit or withdrawal: asked and approved at once (idempotent by the
        key: a retry answers the request, approved once). Returns (request, whether it moved now)."""
        request, _ = self.request(account_id, kind, amount, client_request_id, memo, by, capped=False)
        if request.status == "approved":
            return self._decided_already(request, "approved"), False
        return self.approve(request.request_id, by), True

    # -- helpers ----------------------------------------------------------------------------

    def _account(self, account_id: str) -> AccountCash:
        account = self.store.account(account_id)
        if account is None:
            raise NotFound("account_not_found", f"no account {account_id}", "account_id")
        return account

    def _decided_already(self, request: FundingRequest, wanted: str) -> FundingRequest:
        """Answer a repeated decision; 409 when the request was decided the other way."""
        if request.status != wanted:
            raise Conflict("already_decided", f"the request is {request.status}", "request_id")
        if request.decided_by is not None:  # re-publish: a decision whose audit event was lost
            self._publish(request, f"funding_{wanted}", request.decided_by)
        return request

    def _publish(self, request: FundingRequest, kind: str, actor: str) -> None:
        details = {k: str(v) for k, v in request.to_wire().items() if v is not None}
        self.audit.publish(
            AuditEvent(
                event_id=f"funding:{request.request_id}:{request.status}",
                kind=kind,
                aggregate_type="account",
                aggregate_id=request.account_id,
                ts=request.decided_at or request.requested_at,
                actor=actor,
                source="portfolio",
                correlation_id=request.request_id,
                details=details,
            )
        )
