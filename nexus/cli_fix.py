"""FIX gateway commands of the ``nexus`` CLI: ``fix sessions add|list|remove`` (the sessions
table) and ``bench fix`` (the gateway's figures)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer

from nexus import platform as target_platform
from nexus.platform import refused


def _sessions() -> Any:
    from nexus_fix.sessions import DynamoSessions

    return DynamoSessions(target_platform.tables()("FixSessionsTable"))


def _read_password() -> str:
    """The session password: typed twice at a terminal, else the first line of standard input
    (never an argument: it would stay in the shell history and the process list)."""
    if sys.stdin.isatty():
        return str(typer.prompt("Session password", hide_input=True, confirmation_prompt=True))
    return sys.stdin.readline().rstrip("\r\n")


def sessions_add(sender: str, target: str, accounts: list[str], password: bool, settings: list[str]) -> dict[str, Any]:
    """Add a session; its accounts must exist. Returns what ``list`` shows of it."""
    from nexus_fix.sessions import SessionError, new_session

    pairs: dict[str, str] = {}
    for item in settings:
        name, sep, value = item.partition("=")
        if not sep:
            raise refused("invalid_field", f"a setting is Name=Value, not {item[:40]!r}", "setting")
        pairs[name.strip()] = value.strip()
    table = target_platform.tables()
    from nexus_common import aws

    accounts_table = aws.dynamodb_table(table("AccountsTable"))
    for account in accounts:
        if "Item" not in accounts_table.get_item(Key={"account_id": account}, ProjectionExpression="account_id"):
            raise refused("account_not_found", f"no account {account[:70]!r}", "account")
    try:
        record = new_session(sender, target, accounts, _read_password() if password else None, pairs)
    except SessionError as exc:
        raise refused("invalid_field", str(exc)) from None
    if not _sessions().add(record):
        raise refused("session_exists", f"session {record.session_id} exists: remove it first", "sender")
    public: dict[str, Any] = record.public()
    return public


def sessions_list() -> list[dict[str, Any]]:
    return [record.public() for record in _sessions().list()]


def sessions_remove(sender: str, target: str) -> dict[str, Any]:
    if not _sessions().remove(sender, target):
        raise refused("session_not_found", f"no session {sender}->{target}", "sender")
    return {"removed": f"FIX.4.4:{target}->{sender}"}


def bench_fix_session(count: int, round_trips: int) -> list[str]:
    """Session-layer figures (``nexus_fix.bench``): codec parse+validate msgs/s on one core beside
    QuickFIX's own codec, and TestRequest -> Heartbeat round trips over loopback."""
    from nexus_fix import bench as session_bench

    lines: list[str] = session_bench.report(count=count, round_trips=round_trips)
    return lines


def bench_fix_orders(rate: int, seconds: int, sessions: int) -> list[str]:
    """Order figures of the gateway on the local platform (``nexus.bench_fix``)."""
    from nexus import bench_fix

    return bench_fix.report(bench_fix.run(rate=rate, seconds=seconds, sessions=sessions))


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    fix_app = typer.Typer(help="The FIX 4.4 gateway.", no_args_is_help=True)
    app.add_typer(fix_app, name="fix")
    sessions_app = typer.Typer(help="FIX sessions: who may connect, for which accounts.", no_args_is_help=True)
    fix_app.add_typer(sessions_app, name="sessions")

    @sessions_app.command("add")
    @target_platform.command
    def add(
        sender: Annotated[str, typer.Option("--sender", help="The client's CompID (its SenderCompID, 49).")],
        account: Annotated[
            list[str], typer.Option("--account", help="An account the session may act for (repeat for several).")
        ],
        target: Annotated[
            str, typer.Option("--target", help="The gateway's CompID (template parameter FixCompId).")
        ] = "NEXUS",
        password: Annotated[
            bool,
            typer.Option(
                "--password",
                help="Ask for a Logon password (553/554), stored as an argon2id hash; read from stdin when piped.",
            ),
        ] = False,
        setting: Annotated[
            list[str] | None,
            typer.Option(
                "--setting",
                help="Name=Value with QuickFIX's names: "
                "MinHeartBtInt, MaxHeartBtInt, ResetOnLogon, "
                "ResetOnLogout, ResetOnDisconnect, MaxLatency, "
                "CheckLatency, ValidateFieldsHaveValues, "
                "ValidateUserDefinedFields.",
            ),
        ] = None,
    ) -> None:
        """Add a FIX session (takes effect at the client's next Logon)."""
        typer.echo(json.dumps(sessions_add(sender, target, account, password, setting or [])))

    @sessions_app.command("list")
    @target_platform.command
    def list_() -> None:
        """The sessions, one JSON object a line (never a password or its hash)."""
        for session in sessions_list():
            typer.echo(json.dumps(session))

    @sessions_app.command("remove")
    @target_platform.command
    def remove(
        sender: Annotated[str, typer.Option("--sender", help="The client's CompID.")],
        target: Annotated[str, typer.Option("--target", help="The gateway's CompID.")] = "NEXUS",
    ) -> None:
        """Remove a session: its next Logon is refused (a logged-on connection goes on until it ends)."""
        typer.echo(json.dumps(sessions_remove(sender, target)))

    @bench_app.command("fix")
    def bench_fix(
        rate: Annotated[int, typer.Option(min=1, max=5000, help="NewOrderSingle per second per session.")] = 500,
        seconds: Annotated[int, typer.Option(min=1, max=600, help="Seconds of sending.")] = 30,
        sessions: Annotated[int, typer.Option(min=1, max=16, help="Concurrent sessions of the last run.")] = 4,
        codec_messages: Annotated[
            int, typer.Option(min=1_000, max=10_000_000, help="Messages per codec run (ours and QuickFIX's).")
        ] = 200_000,
        round_trips: Annotated[
            int, typer.Option(min=100, max=1_000_000, help="TestRequest -> Heartbeat round trips.")
        ] = 5_000,
        orders: Annotated[bool, typer.Option(help="Also run the order figures on a local platform.")] = True,
    ) -> None:
        """FIX gateway figures. Session layer, in process: codec parse+validate msgs/s on one core
        beside QuickFIX's own codec, TestRequest -> Heartbeat round trip p50/p99 over loopback. Then
        on the local platform: one session at RATE orders/s for SECONDS (every order acknowledged?
        none lost?), NewOrderSingle -> ExecutionReport(New) p50/p99, then SESSIONS concurrent
        sessions. Uses a real QuickFIX initiator."""
        for line in bench_fix_session(codec_messages, round_trips):
            typer.echo(line)
        if orders:
            for line in bench_fix_orders(rate, seconds, sessions):
                typer.echo(line)
