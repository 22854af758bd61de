"""The acceptor keeps sessions independent: random bytes, truncated frames, a client that stops
reading, an unknown or a duplicate logon on one connection never disturb another session."""

from __future__ import annotations

import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from fix_peer import Gateway, RawPeer, config, report, wait_for
from nexus_fix.codec import Message


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    with Gateway(config("GOOD"), config("NOISY"), write_buffer_limit=64 * 1024, logon_timeout=1.0,
                 max_message_size=4096, socket_send_buffer=16 * 1024) as gw:
        yield gw


def healthy(gw: Gateway, peer: RawPeer, test_id: str) -> None:
    """The good session still answers a TestRequest, and its numbers moved by one each way."""
    before = gw.session("GOOD").next_target
    peer.send(peer.frame("1", (112, test_id)))
    answer = peer.expect("0")
    assert answer.get(112) == test_id
    wait_for(lambda: gw.session("GOOD").next_target == before + 1, what="the TestRequest counted")


def test_random_bytes_on_another_connection_do_not_touch_a_live_session(gateway: Gateway) -> None:
    good = RawPeer(gateway.port, "GOOD")
    good.logon()
    noise = socket.create_connection(("127.0.0.1", gateway.port))
    rng = random.Random(7)
    # WHEN another connection sends 200 kB of random bytes (with FIX-looking starts in them)
    try:
        for _ in range(50):
            chunk = bytes(rng.getrandbits(8) for _ in range(4000)) + b"8=FIX.4.4\x019=12"
            noise.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # on a loaded machine the acceptor's logon timeout may pass first: it hangs up, as it should
    # THEN the live session works, and the noise never became a session
    healthy(gateway, good, "after-noise")
    assert set(gateway.acceptor.sessions) == {"FIX.4.4:NEXUS->GOOD"}  # type: ignore[union-attr]
    noise.close()


def test_random_bytes_and_truncated_frames_inside_a_session_are_dropped_without_seq_change(
    gateway: Gateway,
) -> None:
    noisy = RawPeer(gateway.port, "NOISY")
    noisy.logon()
    good = RawPeer(gateway.port, "GOOD")
    good.logon()
    expected = gateway.session("NOISY").next_target
    # WHEN the noisy session sends garbage and a frame cut short, then a good TestRequest
    rng = random.Random(11)
    noisy.send(bytes(rng.getrandbits(8) for _ in range(3000)))
    whole = noisy.frame("1", (112, "cut"))
    noisy.seq -= 1  # the cut frame never counted
    noisy.send(whole[: len(whole) // 2])
    noisy.send(noisy.frame("1", (112, "whole")))
    # THEN the good frame after the garbage is answered, and the garbage changed no number
    assert noisy.expect("0").get(112) == "whole"
    wait_for(lambda: gateway.session("NOISY").next_target == expected + 1, what="one message counted")
    healthy(gateway, good, "after-truncated")


def test_a_client_that_stops_reading_is_dropped_and_the_others_go_on(gateway: Gateway) -> None:
    peer = RawPeer(gateway.port, "GOOD")
    peer.logon()
    # GIVEN a session whose client logs on, then never reads (a small receive window)
    slow = RawPeer(gateway.port, "NOISY", receive_buffer=4096)
    slow.logon()
    # WHEN the gateway keeps sending it reports (the application never waits on a session)
    session = gateway.session("NOISY")

    async def flood() -> int:
        sent = 0
        while session.logged_on and sent < 20_000:
            await session.send(report(f"C{sent}", sent))
            sent += 1
        return sent

    sent = gateway.loop.run(flood(), timeout=60)
    # THEN it is dropped once its unsent bytes pass the bound, long before the 20,000th report,
    # every report is stored for its next logon, and the other session never noticed
    assert not gateway.session("NOISY").logged_on
    assert sent < 20_000
    assert gateway.session("NOISY").next_sender == sent + 2
    healthy(gateway, peer, "after-slow")
    slow.close()


def test_a_second_logon_for_a_live_session_is_closed_and_the_first_continues(gateway: Gateway) -> None:
    first = RawPeer(gateway.port, "GOOD")
    first.logon()
    second = RawPeer(gateway.port, "GOOD")
    second.seq = 9
    second.send(second.frame("A", (98, "0"), (108, 30)))
    assert second.closed()
    healthy(gateway, first, "still-first")


@pytest.mark.parametrize(
    ("client", "fields"),
    [
        pytest.param("STRANGER", ("A", (98, "0"), (108, 30)), id="unknown-session"),
        pytest.param("NOISY", ("0",), id="not-a-logon"),
        pytest.param("NOISY", ("A", (98, "0")), id="logon-without-heartbeat"),
        pytest.param("NOISY", ("A", (98, "0"), (108, "x")), id="logon-heartbeat-not-a-number"),
    ],
)
def test_a_connection_whose_first_message_is_not_a_valid_logon_is_closed_unanswered(
    gateway: Gateway, client: str, fields: tuple[Any, ...]
) -> None:
    peer = RawPeer(gateway.port, client)
    peer.send(peer.frame(*fields))
    assert peer.closed()
    assert peer.frames == []
    assert set(gateway.acceptor.sessions) == set()  # type: ignore[union-attr]


def test_a_silent_connection_is_closed_after_the_logon_timeout(gateway: Gateway) -> None:
    peer = RawPeer(gateway.port, "NOISY")
    assert peer.closed(timeout=5.0)


def test_a_message_from_the_gateway_is_written_whole(gateway: Gateway) -> None:
    peer = RawPeer(gateway.port, "GOOD")
    peer.logon()
    gateway.send("GOOD", Message.new("8", *report("C1", 1).fields[1:]))
    assert peer.expect("8").get(11) == "C1"


def test_a_resend_larger_than_the_write_bound_reaches_a_client_that_reads(gateway: Gateway) -> None:
    # GIVEN 1,500 reports (about 230 kB, over three times the 64 kB write bound) stored while the
    # client was away
    first = RawPeer(gateway.port, "GOOD")
    first.logon()
    first.close()
    wait_for(lambda: not gateway.session("GOOD").logged_on, what="first connection gone")
    session = gateway.session("GOOD")

    async def produce() -> None:
        for i in range(1500):
            await session.send(report(f"C{i}", i))

    gateway.loop.run(produce(), timeout=60)
    # WHEN the client comes back and asks for everything from 2 on
    peer = RawPeer(gateway.port, "GOOD", receive_buffer=16 * 1024)
    peer.seq = first.seq
    answer = peer.logon()
    peer.send(peer.frame("2", (7, 2), (16, 0)))
    # THEN it receives every report in order, each flagged PossDupFlag, and the session stays up
    got = [peer.expect("8", timeout=10).get(11) for _ in range(1500)]
    assert got == [f"C{i}" for i in range(1500)]
    assert int(answer.get(34) or "0") == 1502
    assert gateway.session("GOOD").logged_on


def test_after_stop_reading_a_frame_is_left_unprocessed_and_the_session_logs_out(gateway: Gateway) -> None:
    # GIVEN a logged-on session
    peer = RawPeer(gateway.port, "GOOD")
    peer.logon()
    before = wait_for(lambda: gateway.session("GOOD").next_target == 2 and 2, what="the Logon counted")
    # WHEN the gateway stops reading (shutdown), a TestRequest arrives, then the acceptor stops
    assert gateway.acceptor is not None
    gateway.acceptor.stop_reading()
    peer.send(peer.frame("1", (112, "late")))
    gateway.stop()
    # THEN the TestRequest was not answered nor counted (the client sends it again next logon)
    assert peer.expect("5").get(58) == "Gateway shutting down"
    assert gateway.acceptor is None and gateway.store is not None
    assert gateway.loop.run(gateway.store.get_seq_nums("FIX.4.4:NEXUS->GOOD"))[1] == before
