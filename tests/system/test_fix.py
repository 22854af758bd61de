"""The FIX 4.4 gateway end to end, with a real FIX engine on the other side (QuickFIX's
initiator, ``nexus.fix_client``) against the whole local platform: logon and logout, every order
type with its execution reports, cancel and replace, status and mass cancel, a trade with an HTTP
user, a resend after a disconnect, a gateway restart, two sessions at once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from helpers import eventually
from http_client import Api

from nexus.fix_client import FixClient, Received

pytestmark = pytest.mark.system

D = Decimal


@pytest.fixture(scope="module")
def local_platform() -> Iterator[Any]:
    from nexus.local.runtime import Options, free_port, running

    options = Options(api_port=free_port(), aws_port=free_port(), ws_port=free_port(), fix_port=free_port(),
                      stage="fix", demo=True, write_state=False)  # fmt: skip
    with running(options) as platform:
        yield platform


@dataclass
class World:
    platform: Any
    alice: FixClient
    bob: FixClient
    carol: Api  # an HTTP user
    port: int


def _client(platform: Any, sender: str, password: str, store: Path) -> FixClient:
    port = int(platform.fix_address.rpartition(":")[2])
    return FixClient("127.0.0.1", port, sender, "NEXUS", store, password=password)


@pytest.fixture(scope="module")
def world(local_platform: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    from nexus.local.demo import create_account

    # alice's session is the demo's; bob's is added with the operator command (password piped)
    demo = local_platform.demo_fix_sessions[0]
    bob_account = local_platform.demo_accounts[1]["account_id"]
    env = {**os.environ, "NEXUS_STAGE": local_platform.options.stage, "NEXUS_STATE_DIR": "/nonexistent",
           "AWS_ENDPOINT_URL": local_platform.aws_endpoint}  # fmt: skip
    added = subprocess.run(
        [sys.executable, "-m", "nexus.cli", "fix", "sessions", "add", "--sender", "BOB", "--account", bob_account,
         "--password", "--setting", "MaxLatency=60"],
        input="bob's long fix password\n", env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "bob's long" not in added.stdout and '"password": true' in added.stdout
    alice = _client(local_platform, demo["sender_comp_id"], demo["password"], tmp_path_factory.mktemp("alice"))
    bob = _client(local_platform, "BOB", "bob's long fix password", tmp_path_factory.mktemp("bob"))
    carol = create_account(local_platform.table, "Carol", D("1000000.00"))
    alice.start()
    bob.start()
    alice.wait_logon()
    bob.wait_logon()
    try:
        yield World(local_platform, alice, bob, Api(local_platform.api_url, carol["api_key"]), alice.port)
    finally:
        alice.stop()
        bob.stop()


def _done(client: FixClient, cl: str, exec_types: set[str], timeout: float = 30.0) -> list[Received]:
    """The reports of ``cl`` once one of them has an ExecType in ``exec_types``."""
    client.wait_for(lambda m: m.get(11) == cl and m.get(150) in exec_types, timeout)
    return client.reports(cl)


def _types(reports: list[Received]) -> list[str]:
    return [m.get(150) or "" for m in reports]


def _http_order(api: Api, body: dict[str, str]) -> str:
    answer = api.post("/v1/orders", body)
    assert answer.status == 202, answer.body
    order_id = str(answer.body["order"]["order_id"])
    eventually(lambda: api.get(f"/v1/orders/{order_id}").body["order"]["status"], lambda s: s != "pending_new")
    return order_id


def _raw_logon(port: int, sender: str, password: str) -> list[Any]:
    """A Logon over a plain socket (QuickFIX allows one initiator per SessionID in a process),
    and the messages that answer it until the gateway closes the connection."""
    import socket

    from nexus_fix.codec import FrameSplitter, Message, parse, utc_timestamp

    logon = Message.new("A", (49, sender), (56, "NEXUS"), (34, 1), (52, utc_timestamp(datetime.now(UTC))),
                        (98, 0), (108, 30), (554, password))  # fmt: skip
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(logon.encode())
        splitter = FrameSplitter(65536)
        while data := sock.recv(65536):
            answers += [parse(frame) for frame in splitter.feed(data)]
    return answers


def test_a_wrong_password_is_refused_at_logon(world: World) -> None:
    # GIVEN a session with a password, not logged on
    from nexus_fix.sessions import DynamoSessions, new_session

    carol_account = world.platform.demo_accounts[0]["account_id"]
    DynamoSessions(world.platform.table("FixSessionsTable")).add(
        new_session("EVE", "NEXUS", [carol_account], "the right password")
    )
    # WHEN a client logs on with another password THEN a Logout answers it and the connection ends
    answers = _raw_logon(world.alice.port, "EVE", "not the password at all")
    assert [m.msg_type for m in answers] == ["5"]
    # AND the sessions logged on with their passwords (alice's, bob's set by the CLI) go on
    world.alice.send("H", (11, "nothing-yet"), (55, "AAPL"), (54, "1"))
    [status] = world.alice.wait_for(lambda m: m.get(11) == "nothing-yet")
    assert (status.get(150), status.get(39)) == ("I", "8")


def test_orders_of_every_type_with_their_execution_reports_and_a_trade_with_an_http_user(world: World) -> None:
    alice, carol = world.alice, world.carol
    # GIVEN carol resting 10 AAPL at 100 over HTTP
    carol_order = _http_order(carol, {"symbol": "AAPL", "side": "sell", "type": "limit", "quantity": "10",
                                      "price": "100.00"})  # fmt: skip
    # WHEN alice buys 4 at 100 over FIX (limit)
    alice.new_order("L1", "AAPL", "1", "4", "2", "100")
    reports = _done(alice, "L1", {"F"})
    # THEN pending new, new, then the fill, with exact decimals
    assert _types(reports) == ["A", "0", "F"]
    fill = reports[-1]
    assert (fill.get(39), fill.get(14), fill.get(151), fill.get(6), fill.get(31), fill.get(32)) == (
        "2", "4", "0", "100", "100", "4")  # fmt: skip
    # AND the HTTP user's order shows the same trade
    partly = eventually(lambda: carol.get(f"/v1/orders/{carol_order}").body["order"],
                        lambda o: o["filled_quantity"] == "4")  # fmt: skip
    assert partly["status"] == "partially_filled"
    eventually(lambda: carol.get("/v1/markets/AAPL/trades?limit=1").body.get("trades") or [], bool)
    # a market buy (IOC by default) takes 2 more
    alice.new_order("M1", "AAPL", "1", "2", "1")
    assert _types(_done(alice, "M1", {"F", "8"})) == ["A", "0", "F"]
    # a stop and a stop-limit rest until the last price reaches 103
    alice.new_order("S1", "AAPL", "1", "1", "3", t99="103")
    alice.new_order("SL1", "AAPL", "1", "1", "4", "104", t99="103")
    assert _types(_done(alice, "S1", {"0", "8"})) == ["A", "0"]
    assert _types(_done(alice, "SL1", {"0", "8"})) == ["A", "0"]
    # a post-only buy at the ask would take: the engine rejects it (OrdRejReason 11)
    alice.new_order("PO1", "AAPL", "1", "1", "2", "100", t18="6")
    rejected = _done(alice, "PO1", {"8"})
    assert _types(rejected) == ["A", "8"] and rejected[-1].get(103) == "11"
    # an iceberg rests its whole quantity, showing 5
    alice.new_order("IC1", "AAPL", "1", "20", "2", "95", t111="5")
    assert _types(_done(alice, "IC1", {"0"})) == ["A", "0"] and alice.reports("IC1")[-1].get(151) == "20"
    # IOC: fills the 4 left, the remainder is canceled
    alice.new_order("IOC1", "AAPL", "1", "10", "2", "100", t59="3")
    ioc = _done(alice, "IOC1", {"4"})
    assert _types(ioc) == ["A", "0", "F", "4"] and (ioc[-1].get(14), ioc[-1].get(151)) == ("4", "0")
    # FOK: nothing at 99 -> canceled whole
    alice.new_order("FOK1", "AAPL", "1", "100", "2", "99", t59="4")
    assert _types(_done(alice, "FOK1", {"4"}))[-1] == "4"
    # GTD and DAY sells rest
    expire = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y%m%d-%H:%M:%S")
    alice.new_order("GTD1", "AAPL", "2", "1", "2", "106", t59="6", t126=expire)
    alice.new_order("DAY1", "AAPL", "2", "1", "2", "107", t59="0")
    assert _types(_done(alice, "GTD1", {"0", "8"})) == ["A", "0"]
    assert _types(_done(alice, "DAY1", {"0", "8"})) == ["A", "0"]
    # every report has its own ExecID
    exec_ids = [m.get(17) for m in alice.received if m.msg_type == "8" and m.get(150) != "I"]
    assert len(exec_ids) == len(set(exec_ids))
    # a repeated ClOrdID is rejected as a duplicate
    alice.new_order("L1", "AAPL", "1", "4", "2", "100")
    assert alice.wait_for(lambda m: m.get(11) == "L1" and m.get(150) == "8")[0].get(103) == "6"


def test_cancel_replace_status_and_mass_cancel(world: World) -> None:
    alice = world.alice
    alice.new_order("C1", "AAPL", "1", "5", "2", "95")
    _done(alice, "C1", {"0"})
    # replace twice along the ClOrdID chain
    alice.send("G", (41, "C1"), (11, "C2"), (55, "AAPL"), (54, "1"), (38, "7"), (40, "2"), (44, "96"),
               (60, "20260101-00:00:00"))  # fmt: skip
    replaced = _done(alice, "C2", {"5", "9"})
    assert [(m.get(150), m.get(41)) for m in replaced] == [("E", "C1"), ("5", "C1")]
    assert (replaced[-1].get(38), replaced[-1].get(44), replaced[-1].get(151)) == ("7", "96", "7")
    alice.send("G", (41, "C2"), (11, "C3"), (55, "AAPL"), (54, "1"), (38, "7"), (40, "2"), (44, "97"),
               (60, "20260101-00:00:00"))  # fmt: skip
    assert _types(_done(alice, "C3", {"5", "9"})) == ["E", "5"]
    # the order's status under its latest ClOrdID
    alice.send("H", (11, "C3"), (55, "AAPL"), (54, "1"), (790, "st-1"))
    [status] = alice.wait_for(lambda m: m.get(790) == "st-1")
    assert (status.get(150), status.get(39), status.get(44), status.get(38)) == ("I", "0", "97", "7")
    # cancel it, then cancelling it again is too late
    alice.send("F", (41, "C3"), (11, "C4"), (55, "AAPL"), (54, "1"), (60, "20260101-00:00:00"))
    assert _types(_done(alice, "C4", {"4"})) == ["6", "4"]
    alice.send("F", (41, "C4"), (11, "C5"), (55, "AAPL"), (54, "1"), (60, "20260101-00:00:00"))
    [reject] = alice.wait_for(lambda m: m.msg_type == "9" and m.get(11) == "C5")
    assert (reject.get(434), reject.get(102), reject.get(39)) == ("1", "0", "4")
    # mass cancel: the report, then every open order canceled
    open_orders = {"S1", "SL1", "IC1", "GTD1", "DAY1"}
    alice.send("q", (11, "MC1"), (530, "7"), (60, "20260101-00:00:00"))
    [mass] = alice.wait_for(lambda m: m.msg_type == "r")
    assert (mass.get(11), mass.get(531)) == ("MC1", "7")
    canceled = alice.wait_for(lambda m: m.get(11) in open_orders and m.get(150) == "4", count=len(open_orders))
    assert {m.get(11) for m in canceled} == open_orders


def test_a_disconnected_session_gets_what_it_missed_by_resend(world: World, tmp_path: Path) -> None:
    alice, carol = world.alice, world.carol
    # GIVEN alice resting a buy of 3
    alice.new_order("R1", "AAPL", "1", "3", "2", "99")
    _done(alice, "R1", {"0"})
    # WHEN her connection drops and carol fills the order meanwhile
    alice.drop()
    sold = _http_order(carol, {"symbol": "AAPL", "side": "sell", "type": "limit", "quantity": "3", "price": "99"})
    eventually(lambda: carol.get(f"/v1/orders/{sold}").body["order"]["status"], lambda s: s == "filled")
    # THEN on reconnection (her own sequence numbers, from her store) the fill is resent
    again = FixClient(alice.host, alice.port, alice.sender, alice.target, alice.store_dir, password=alice.password)
    world.alice = again
    again.start()
    again.wait_logon()
    [fill] = again.wait_for(lambda m: m.get(11) == "R1" and m.get(150) == "F")
    assert (fill.get(43), fill.get(39), fill.get(14)) == ("Y", "2", "3")


def test_a_gateway_restart_resumes_the_session(world: World) -> None:
    alice = world.alice
    alice.new_order("K1", "AAPL", "1", "2", "2", "94")
    _done(alice, "K1", {"0"})
    logons = alice.logons
    # WHEN the gateway process dies (the service scheduler starts another)
    [process] = [p for p in world.platform.container_processes("fix") if p.poll() is None]
    process.kill()
    # THEN the client logs on again on the same sequence, and the order entered before is known
    alice.wait_logon(timeout=90, count=logons + 1)
    alice.send("F", (41, "K1"), (11, "K2"), (55, "AAPL"), (54, "1"), (60, "20260101-00:00:00"))
    assert _types(_done(alice, "K2", {"4", "9"}, timeout=60)) == ["6", "4"]
    assert not [m for m in alice.admin if m.msg_type in ("3", "5") and "too low" in (m.get(58) or "")]


def test_two_concurrent_sessions_each_get_their_own_reports(world: World) -> None:
    alice, bob = world.alice, world.bob
    # WHEN bob sells and alice buys MSFT at once, each on its own session
    bob.new_order("B1", "MSFT", "2", "5", "2", "300")
    alice.new_order("A1", "MSFT", "1", "5", "2", "300")
    # THEN each gets its own fill, and nothing of the other's
    [bob_fill] = bob.wait_for(lambda m: m.get(11) == "B1" and m.get(150) == "F")
    [alice_fill] = alice.wait_for(lambda m: m.get(11) == "A1" and m.get(150) == "F")
    assert (bob_fill.get(39), alice_fill.get(39), bob_fill.get(31), alice_fill.get(31)) == ("2", "2", "300", "300")
    assert not [m for m in bob.received if m.get(11) == "A1"] and not [m for m in alice.received if m.get(11) == "B1"]
    assert bob_fill.get(1) == world.platform.demo_accounts[1]["account_id"]
