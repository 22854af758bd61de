"""The acceptor against a real FIX engine: QuickFIX/C++ (the ``quickfix`` 1.16.0 binding) as the
initiator, HeartBtInt 1 s and reconnecting every second, and a trivial application that acks
each NewOrderSingle. Each test waits for events, bounded, never for a fixed time."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fix_peer import Gateway, QuickFixClient, config, report, wait_for
from nexus_fix.store import MemoryStore


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[list[QuickFixClient]]:
    made: list[QuickFixClient] = []
    yield made
    for client in made:
        client.stop()


def connect(clients: list[QuickFixClient], gw: Gateway, name: str, workdir: Path, **kw: Any) -> QuickFixClient:
    client = QuickFixClient(gw.port, name, workdir, **kw).start()
    clients.append(client)
    wait_for(client.logged_on, what=f"{name} logged on")
    return client


def test_a_quickfix_initiator_logs_on_trades_and_logs_out(tmp_path: Path, clients: list[QuickFixClient]) -> None:
    with Gateway(config("CLIENT1")) as gw:
        # GIVEN QuickFIX logged on
        qf = connect(clients, gw, "CLIENT1", tmp_path)
        assert gw.app.logons == ["FIX.4.4:NEXUS->CLIENT1"]
        # WHEN it sends an order; THEN the application sees it and QuickFIX gets the ack
        qf.new_order("C1")
        ack = qf.next_app()
        assert (ack.msg_type, ack.get(11), ack.get(150)) == ("8", "C1", "0")
        # WHEN it logs out; THEN the session is down on both sides
        qf.stop()
        clients.clear()
        wait_for(lambda: gw.app.logouts, what="logout seen by the gateway")
        assert not gw.session("CLIENT1").logged_on


def test_a_password_set_by_quickfix_in_to_admin_is_checked_at_logon(
    tmp_path: Path, clients: list[QuickFixClient]
) -> None:
    seen: list[tuple[str | None, str | None]] = []

    def check(username: str | None, password: str | None) -> bool:
        seen.append((username, password))
        return hmac.compare_digest((password or "").encode(), b"s3cret")

    with Gateway(config("CLIENT1", password_check=check)) as gw:
        connect(clients, gw, "CLIENT1", tmp_path, password="s3cret")
        assert seen == [("CLIENT1", "s3cret")]
        assert gw.session("CLIENT1").logged_on


def test_heartbeats_keep_the_session_and_a_test_request_is_answered(
    tmp_path: Path, clients: list[QuickFixClient]
) -> None:
    with Gateway(config("CLIENT1")) as gw:
        qf = connect(clients, gw, "CLIENT1", tmp_path)
        # WHEN both sides are idle; THEN the gateway heartbeats (HeartBtInt 1 s), the session stays up
        qf.admin_of_type("0")
        qf.admin_of_type("0")
        assert qf.logged_on() and gw.session("CLIENT1").logged_on
        # WHEN QuickFIX sends a TestRequest; THEN a Heartbeat carries its TestReqID
        qf.test_request("PING-1")
        wait_for(lambda: any(m.get(112) == "PING-1" for m in list(qf.admin.queue)), what="heartbeat for PING-1")


def test_after_a_disconnect_the_reports_missed_are_resent_on_reconnection(
    tmp_path: Path, clients: list[QuickFixClient]
) -> None:
    with Gateway(config("CLIENT1")) as gw:
        qf = connect(clients, gw, "CLIENT1", tmp_path)
        qf.new_order("C1")
        qf.next_app()
        # GIVEN the connection drops, and a report is produced while it is down
        session = gw.session("CLIENT1")

        async def drop_then_report() -> None:  # one step: QuickFIX cannot reconnect in between
            await session.disconnect()
            await session.send(report("C1", 99))

        gw.loop.run(drop_then_report())
        # WHEN QuickFIX reconnects (it sees our higher MsgSeqNum and asks for a resend)
        wait_for(lambda: gw.app.logons.count("FIX.4.4:NEXUS->CLIENT1") == 2, what="second logon")
        # THEN it receives the missed report, flagged as a possible duplicate
        resent = qf.next_app()
        assert (resent.get(11), resent.get(150), resent.get(43)) == ("C1", "4", "Y")
        assert resent.get(122) is not None
        qf.new_order("C2")
        assert qf.next_app().get(11) == "C2"


def test_a_gateway_restart_resumes_the_session_from_the_store(aws: Any, tmp_path: Path,
                                                             clients: list[QuickFixClient]) -> None:
    import boto3
    from nexus_fix.store import DynamoStore

    table = boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("FixMessageStoreTable"))
    # GIVEN the gateway on the DynamoDB store and QuickFIX with a file store (it survives too)
    gw = Gateway(config("CLIENT1"), store=DynamoStore(table)).start()
    try:
        store_path = {"FileStorePath": str(tmp_path / "qfstore")}
        qf = QuickFixClient(gw.port, "CLIENT1", tmp_path, **store_path)
        qf.start()
        wait_for(qf.logged_on, what="logon")
        qf.new_order("C1")
        assert qf.next_app().get(11) == "C1"
        qf.stop()
        wait_for(lambda: gw.app.logouts, what="logout")
        # ... a report is produced while the client is away, then the gateway restarts
        gw.send("CLIENT1", report("C1", 99))
        gw.restart()
        assert gw.acceptor is not None and gw.acceptor.sessions == {}
        # WHEN QuickFIX comes back
        qf2 = QuickFixClient(gw.port, "CLIENT1", tmp_path, **store_path)
        clients.append(qf2)
        qf2.start()
        wait_for(qf2.logged_on, what="logon after restart")
        # THEN the session continues its numbers (no reset) and the report missed is resent
        resent = qf2.next_app()
        assert (resent.get(11), resent.get(150), resent.get(43)) == ("C1", "4", "Y")
        qf2.new_order("C2")
        assert qf2.next_app().get(11) == "C2"
        wait_for(lambda: gw.session("CLIENT1").next_target == qf2.next_sender, what="numbers in step")
    finally:
        gw.close()


def test_two_concurrent_sessions_keep_their_own_numbers_and_reports(
    tmp_path: Path, clients: list[QuickFixClient]
) -> None:
    store = MemoryStore()
    with Gateway(config("CLIENT1"), config("CLIENT2"), store=store) as gw:
        one = connect(clients, gw, "CLIENT1", tmp_path)
        two = connect(clients, gw, "CLIENT2", tmp_path)
        for i in range(3):
            one.new_order(f"A{i}")
        two.new_order("B0")
        assert sorted(one.next_app().get(11) or "" for _ in range(3)) == ["A0", "A1", "A2"]
        assert two.next_app().get(11) == "B0"
        assert one.app.empty() and two.app.empty()
        assert gw.app.orders("FIX.4.4:NEXUS->CLIENT1") == ["A0", "A1", "A2"]
        assert gw.app.orders("FIX.4.4:NEXUS->CLIENT2") == ["B0"]
        wait_for(lambda: gw.session("CLIENT1").next_target == one.next_sender, what="CLIENT1 numbers in step")
        wait_for(lambda: gw.session("CLIENT2").next_target == two.next_sender, what="CLIENT2 numbers in step")


def test_a_gap_from_quickfix_is_asked_for_and_its_gap_fill_releases_the_held_order(
    tmp_path: Path, clients: list[QuickFixClient]
) -> None:
    import quickfix as fix

    with Gateway(config("CLIENT1")) as gw:
        # (a file store: QuickFIX's memory store does not find a message sent after the jump below)
        qf = connect(clients, gw, "CLIENT1", tmp_path, FileStorePath=str(tmp_path / "qfstore"))
        expected = gw.session("CLIENT1").next_target
        # GIVEN QuickFIX skips three sequence numbers (as if three messages were lost)
        fix.Session.lookupSession(qf.session_id).setNextSenderMsgSeqNum(qf.next_sender + 3)
        # WHEN its next order arrives
        qf.new_order("C-GAP")
        # THEN the gateway asks for the gap, QuickFIX fills it (SequenceReset-GapFill) and resends the
        # order (PossDupFlag=Y, ignored: it is held already); the held order is processed once,
        # acknowledged, the numbers in step again
        ack = qf.next_app()
        assert ack.get(11) == "C-GAP"
        assert gw.app.orders("FIX.4.4:NEXUS->CLIENT1") == ["C-GAP"]
        wait_for(lambda: gw.session("CLIENT1").next_target == qf.next_sender, what="numbers in step")
        assert gw.session("CLIENT1").next_target == expected + 4
        qf.new_order("C-NEXT")
        assert qf.next_app().get(11) == "C-NEXT"
        assert gw.app.orders("FIX.4.4:NEXUS->CLIENT1") == ["C-GAP", "C-NEXT"]
