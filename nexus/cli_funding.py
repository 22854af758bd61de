"""Funding commands of the ``nexus`` CLI, beside ``nexus accounts create``:

nexus accounts deposit  --account A --amount 100.00 [--request-id ID] [--memo M]
nexus accounts withdraw --account A --amount 100.00 [--request-id ID] [--memo M]
nexus accounts funding-requests [--account A]   the pending queue, or one account's requests
nexus accounts approve --request fnd_...        a user's request: the cash moves, once
nexus accounts reject  --request fnd_... --reason R

An operator's deposit or withdrawal is a request approved at once, through the funding service's
own code (``nexus_portfolio.funding_service``): one transaction moves the account's cash and
posts the journal entry against the house ``bank`` account, and the audit trail records it. The
request id is the idempotency key: run the command again with the ``request_id`` it printed (or
the ``--request-id`` you gave) and nothing moves twice. Errors print the NexusTrade error body
and exit 2.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer

from nexus import platform

AccountOption = Annotated[str, typer.Option("--account", help="The account id (acc_...).")]
AmountOption = Annotated[str, typer.Option("--amount", help="USD, > 0, at most 2 decimal places, e.g. 2500.00")]
RequestIdOption = Annotated[
    str, typer.Option("--request-id", help="Idempotency key; default: a new one, printed (reuse it to retry).")
]
MemoOption = Annotated[str, typer.Option("--memo", help="A note kept with the movement.")]
OPERATOR = "operator"


def funding_service(table: Any) -> Any:
    """The funding service over the running platform's tables (``table(logical_id)`` gives names)."""
    from nexus_common.audit import KinesisAuditSink
    from nexus_portfolio.funding_repo import DynamoFundingStore
    from nexus_portfolio.funding_service import FundingService

    store = DynamoFundingStore(
        table("FundingRequestsTable"), table("AccountsTable"), table("LedgerTable"), table("SettlementsTable")
    )
    return FundingService(store, KinesisAuditSink(table("AuditEventsStream")))


def _service() -> Any:
    return funding_service(platform.tables())


def _run(action: Any) -> None:
    """Print the request(s) as JSON; a refusal prints its error body and exits 2."""
    from nexus_common.errors import NexusError

    try:
        answer = action()
    except NexusError as exc:
        typer.echo(json.dumps(exc.body()), err=True)
        raise typer.Exit(2) from exc
    typer.echo(json.dumps(answer))


def register(accounts_app: typer.Typer) -> None:
    """Add the funding commands to ``nexus accounts``."""

    def move(kind: str, account: str, amount: str, request_id: str, memo: str) -> None:
        key = request_id or f"cli-{uuid.uuid4().hex}"
        _run(lambda: _service().move(account, kind, amount, key, memo or None, OPERATOR)[0].to_wire())

    @accounts_app.command("deposit")
    @platform.command
    def deposit(account: AccountOption, amount: AmountOption, request_id: RequestIdOption = "",
                memo: MemoOption = "") -> None:  # fmt: skip
        """Deposit cash into an account (a ledger entry against the bank; audited)."""
        move("deposit", account, amount, request_id, memo)

    @accounts_app.command("withdraw")
    @platform.command
    def withdraw(account: AccountOption, amount: AmountOption, request_id: RequestIdOption = "",
                 memo: MemoOption = "") -> None:  # fmt: skip
        """Withdraw settled, unreserved cash from an account (refused beyond it; audited)."""
        move("withdrawal", account, amount, request_id, memo)

    @accounts_app.command("funding-requests")
    @platform.command
    def funding_requests(
        account: Annotated[str, typer.Option("--account", help="One account's requests (default: all pending).")] = "",
    ) -> None:
        """List the pending deposit and withdrawal requests (oldest first), or one account's."""

        def listing() -> Any:
            service = _service()
            found = service.of_account(account) if account else service.pending()
            return {"requests": [request.to_wire() for request in found]}

        _run(listing)

    @accounts_app.command("approve")
    @platform.command
    def approve(request: Annotated[str, typer.Option("--request", help="The request id (fnd_...).")]) -> None:
        """Approve a user's deposit or withdrawal request: the cash moves, once."""
        _run(lambda: _service().approve(request, OPERATOR).to_wire())

    @accounts_app.command("reject")
    @platform.command
    def reject(
        request: Annotated[str, typer.Option("--request", help="The request id (fnd_...).")],
        reason: Annotated[str, typer.Option("--reason", help="Why (kept with the request, audited).")],
    ) -> None:
        """Reject a user's deposit or withdrawal request: nothing moves."""
        _run(lambda: _service().reject(request, OPERATOR, reason).to_wire())
