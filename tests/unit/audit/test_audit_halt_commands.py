"""A halt or resume on ``order-commands`` (no order, no account) is audited on its symbol."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize("kind", ["halt", "resume"])
def test_a_halt_or_resume_command_is_kept_on_its_symbol(kind: str) -> None:
    from nexus_audit.records import from_command

    # GIVEN a halt (or resume) command as the admin API puts it on the journal
    command = {"type": kind, "command_id": f"{kind}-1", "symbol": "AAPL", "reason": "news pending",
               "ts": "2026-01-05T14:30:00.000000Z"}  # fmt: skip
    # WHEN it is mapped
    (entry,) = from_command(command)
    # THEN the symbol's record keeps it with its reason, not a poison record
    assert (entry.aggregate, entry.kind, entry.event_id) == ("symbol#AAPL", f"{kind}_requested", f"cmd:{kind}-1")
    assert entry.details["reason"] == "news pending"
