"""A client faster than its order entry: the acceptor reads a logged-on connection as it comes,
and each message waits its turn with when it arrived. SendingTime is judged against that, a client
whose messages are waiting is not silent, the waiting is bounded (reading pauses), and the
messages a client sent before it went away are still processed, in order."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from fix_peer import AckApp, Gateway, RawPeer, config, wait_for
from nexus_fix.codec import Message
from nexus_fix.session import SessionHandle

START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)
CLIENT = "BURST"
SESSION = f"FIX.4.4:NEXUS->{CLIENT}"


class Clock:
    """The gateway's and the client's clock, moved by the test."""

    def __init__(self, offset: float = 0.0, base: Clock | None = None) -> None:
        self.now = START
        self._offset = timedelta(seconds=offset)
        self._base = base

    def __call__(self) -> datetime:
        return (self._base() if self._base is not None else self.now) + self._offset

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class GatedApp(AckApp):
    """Acknowledges each NewOrderSingle once the gate opens: an order entry far behind its client."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def on_message(self, session: SessionHandle, message: Message) -> None:
        if message.msg_type == "D":
            await self.gate.wait()
        await super().on_message(session, message)


def order(cl_ord_id: str) -> tuple[tuple[int, object], ...]:
    return ((11, cl_ord_id), (55, "AAPL"), (54, "1"), (60, "20260105-14:30:00.000"), (38, "1"), (40, "2"),
            (44, "150.25"))  # fmt: skip


def open_gate(gw: Gateway, app: GatedApp) -> None:
    gw.loop.loop.call_soon_threadsafe(app.gate.set)


def waiting(gw: Gateway) -> int:
    transport: Any = gw.session(CLIENT).transport
    return int(transport.unprocessed) if transport is not None else 0


def collect_acks(peer: RawPeer, count: int, timeout: float = 20.0) -> tuple[list[str], list[Message]]:
    """The ClOrdIDs of the next ``count`` ExecutionReports, and the session messages among them
    other than Heartbeats."""
    acks: list[str] = []
    others: list[Message] = []
    while len(acks) < count:
        msg = peer.receive(timeout)
        assert msg is not None, f"connection closed after {len(acks)} acknowledgements; also got {others}"
        if msg.msg_type == "8":
            acks.append(msg.get(11) or "")
        elif msg.msg_type != "0":
            others.append(msg)
    return acks, others


def test_a_burst_waiting_for_its_entry_is_judged_by_when_it_arrived_and_the_client_stays_alive() -> None:
    clock, app = Clock(), GatedApp()
    with Gateway(config(CLIENT), app=app, clock=clock, tick=0.02) as gw:
        peer = RawPeer(gw.port, CLIENT, clock=clock)
        peer.logon(heartbeat=5)
        # GIVEN 200 orders sent at once, whose entry holds the first (a platform far behind its client)
        peer.send(b"".join(peer.frame("D", *order(f"C{i}")) for i in range(200)))
        wait_for(lambda: waiting(gw) == 199, what="the burst read and waiting")
        # WHEN their turn comes 300 s later: past MaxLatency (120 s) and 2.4 heartbeats of silence
        clock.advance(300)
        wait_for(lambda: gw.loop.run(asyncio.sleep(0.2, True)), what="several timer ticks")
        assert gw.session(CLIENT).logged_on  # messages waiting their turn are not silence
        open_gate(gw, app)
        # THEN every order is entered and acknowledged in order: no Reject, no Logout, no TestRequest
        acks, others = collect_acks(peer, 200)
        assert acks == [f"C{i}" for i in range(200)]
        assert others == []
        assert gw.session(CLIENT).logged_on
        wait_for(lambda: gw.session(CLIENT).next_target == 202, what="200 orders counted after the Logon")
        # AND a message already late when it arrives is still refused: Reject 373=10, then Logout
        late = RawPeer.__new__(RawPeer)
        late.__dict__.update(peer.__dict__, _clock=Clock(-121, base=clock))
        late.send(late.frame("D", *order("LATE")))
        reject = late.expect("3")
        assert (reject.get(373), reject.get(371)) == ("10", "52")
        assert late.expect("5").get(58) == "SendingTime accuracy problem"
        assert app.orders(SESSION) == [f"C{i}" for i in range(200)]


def test_waiting_messages_are_bounded_and_reading_resumes_as_they_are_taken() -> None:
    clock, app = Clock(), GatedApp()
    limit = 32 * 1024
    with Gateway(config(CLIENT), app=app, clock=clock, inbound_limit=limit) as gw:
        peer = RawPeer(gw.port, CLIENT, clock=clock)
        peer.logon()
        frames = [peer.frame("D", *order(f"C{i}")) for i in range(5000)]  # about 900 kB
        sender = threading.Thread(target=peer.send, args=(b"".join(frames),), daemon=True)
        # GIVEN a client sending 5,000 orders while their entry holds the first
        sender.start()
        wait_for(lambda: waiting(gw) > 0, what="orders waiting")
        wait_for(lambda: gw.loop.run(asyncio.sleep(0.3, True)), what="the reader at its bound")
        # THEN the gateway holds at most the bound and one read more (64 kB); the rest waits in TCP
        size = max(len(f) for f in frames)
        held = waiting(gw)
        assert 0 < held * size <= limit + 64 * 1024 + size
        assert held < 1000
        # WHEN the entry goes on, reading resumes: every order is acknowledged, in order
        open_gate(gw, app)
        acks, others = collect_acks(peer, 5000)
        sender.join(10)
        assert acks == [f"C{i}" for i in range(5000)]
        assert others == []
        wait_for(lambda: gw.session(CLIENT).next_target == 5002, what="5,000 orders counted")


def test_messages_waiting_when_the_client_goes_away_are_counted_only_if_processed_and_asked_for_again() -> None:
    clock, app = Clock(), GatedApp()
    with Gateway(config(CLIENT), app=app, clock=clock) as gw:
        peer = RawPeer(gw.port, CLIENT, clock=clock)
        peer.logon()
        # GIVEN 20 orders waiting for their entry
        peer.send(b"".join(peer.frame("D", *order(f"C{i}")) for i in range(20)))
        wait_for(lambda: waiting(gw) == 19, what="the orders read and waiting")
        # WHEN the client goes away, then the entry goes on
        peer.close()
        open_gate(gw, app)
        # THEN the orders taken before the gateway saw the connection gone are entered, in order, and
        # counted; no other is (the write of the first report finds the connection gone)
        wait_for(lambda: not gw.session(CLIENT).logged_on, what="the session down")
        taken = app.orders(SESSION)
        assert 1 <= len(taken) < 20
        assert taken == [f"C{i}" for i in range(len(taken))]
        assert gw.session(CLIENT).next_target == 2 + len(taken)
        # AND at the next logon the gateway asks for the others again
        again = RawPeer(gw.port, CLIENT, clock=clock)
        again.seq = 22
        again.logon()
        resend = again.expect("2")
        assert (resend.get(7), resend.get(16)) == (str(2 + len(taken)), "0")
