"""``nexus fix sessions add|list|remove`` on the sessions table (moto, created from the template):
the accounts are checked, the password is read (never an argument) and kept only as a hash, and
bad input exits 2 with the error body. GIVEN / WHEN / THEN."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import pytest
import typer

from nexus import cli_fix


@pytest.fixture
def tables(aws: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(cli_fix.target_platform, "tables", lambda target=None: aws.table_name)
    boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("AccountsTable")).put_item(
        Item={"account_id": "acc_fix", "name": "fix", "status": "active"}
    )
    return aws


def test_add_list_remove(tables: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN a password piped on stdin
    monkeypatch.setattr("sys.stdin", io.StringIO("a long session password\n"))
    # WHEN a session is added, then listed
    added = cli_fix.sessions_add("CLIENT1", "NEXUS", ["acc_fix"], True, ["ResetOnLogon=Y"])
    listed = cli_fix.sessions_list()
    # THEN it shows that it has a password, never the password or its hash
    assert added["session_id"] == "FIX.4.4:NEXUS->CLIENT1" and added["password"] is True
    assert listed == [added] and "a long session" not in json.dumps(listed) and "argon2" not in json.dumps(listed)
    assert listed[0]["settings"]["ResetOnLogon"] == "Y"
    # AND it is removed once
    assert cli_fix.sessions_remove("CLIENT1", "NEXUS") == {"removed": "FIX.4.4:NEXUS->CLIENT1"}
    with pytest.raises(typer.Exit):
        cli_fix.sessions_remove("CLIENT1", "NEXUS")
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "session_not_found"


@pytest.mark.parametrize(
    ("accounts", "settings", "code"),
    [
        (["acc_missing"], [], "account_not_found"),
        (["acc_fix"], ["NoSuchSetting=1"], "invalid_field"),
        (["acc_fix"], ["ResetOnLogon"], "invalid_field"),
    ],
)
def test_bad_sessions_are_refused(
    tables: Any, capsys: pytest.CaptureFixture[str], accounts: list[str], settings: list[str], code: str
) -> None:
    with pytest.raises(typer.Exit) as exit_:
        cli_fix.sessions_add("CLIENT2", "NEXUS", accounts, False, settings)
    assert exit_.value.exit_code == 2
    assert json.loads(capsys.readouterr().err)["error"]["code"] == code
    assert cli_fix.sessions_list() == []


def test_a_session_is_never_overwritten(tables: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cli_fix.sessions_add("CLIENT3", "NEXUS", ["acc_fix"], False, [])
    with pytest.raises(typer.Exit):
        cli_fix.sessions_add("CLIENT3", "NEXUS", ["acc_fix"], False, ["MaxLatency=5"])
    assert json.loads(capsys.readouterr().err)["error"]["code"] == "session_exists"
    assert cli_fix.sessions_list()[0]["settings"]["MaxLatency"] == "120"
