"""The FIX session rules, driven by an in-process peer: the ``Session`` state machine with an
in-memory transport, an in-memory store and an injected clock (no sockets, no sleeps)."""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from fix_peer import ACCEPTOR, AckApp, report
from nexus_fix import codec
from nexus_fix.codec import FrameSplitter, Message, parse, utc_timestamp
from nexus_fix.session import Session, SessionConfig, business_reject
from nexus_fix.store import MemoryStore

T = TypeVar("T")
CLIENT = "CLIENT1"
START = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class Wire:
    """The acceptor's side of a connection, in memory: what the session wrote, parsed."""

    def __init__(self) -> None:
        self._splitter = FrameSplitter()
        self.sent: list[Message] = []
        self._closed = False
        self.unprocessed = 0  # what it delivers is processed at once

    def write(self, data: bytes) -> None:
        self.sent.extend(parse(f) for f in self._splitter.feed(data))

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def take(self) -> list[Message]:
        out, self.sent = self.sent, []
        return out

    def types(self) -> list[str]:
        return [m.msg_type for m in self.take()]


class Peer:
    """The counterparty: writes frames with its own sequence numbers and the shared clock."""

    def __init__(self, clock: Clock, client: str = CLIENT) -> None:
        self.clock = clock
        self.client = client
        self.seq = 1

    def frame(self, msg_type: str, *fields: tuple[int, object], seq: int | None = None, poss_dup: bool = False,
              sending_time: datetime | None = None, comp: tuple[str, str] | None = None) -> bytes:
        sender, target = comp or (self.client, ACCEPTOR)
        header: list[tuple[int, object]] = [(49, sender), (56, target)]
        header.append((34, seq if seq is not None else self.seq))
        header.append((52, utc_timestamp(sending_time or self.clock())))
        if poss_dup:
            header += [(43, "Y"), (122, utc_timestamp(self.clock() - timedelta(seconds=1)))]
        if seq is None:
            self.seq += 1
        return Message.new(msg_type, *header, *fields).encode()

    def logon(self, heartbeat: int = 30, *extra: tuple[int, object], seq: int | None = None) -> Message:
        return parse(self.frame("A", (98, "0"), (108, heartbeat), *extra, seq=seq))

    def order(self, cl_ord_id: str, **kw: Any) -> bytes:
        return self.frame("D", (11, cl_ord_id), (55, "AAPL"), (54, "1"), (60, utc_timestamp(self.clock())),
                          (38, "100"), (40, "2"), (44, "150.25"), **kw)


class World:
    def __init__(self, **settings: Any) -> None:
        self.clock = Clock()
        self.store = MemoryStore()
        self.app = AckApp()
        self.config = SessionConfig(ACCEPTOR, CLIENT, accounts=("ACC1",), **settings)
        self.session = Session(self.config, self.store, self.app, self.clock)
        self.peer = Peer(self.clock)
        self.wire = Wire()

    async def logged_on(self, heartbeat: int = 30) -> World:
        assert await self.session.logon(self.wire, self.peer.logon(heartbeat))
        self.wire.take()
        return self

    async def feed(self, *frames: bytes) -> list[Message]:
        for f in frames:
            await self.session.on_frame(f)
        return self.wire.take()

    def orders_seen(self) -> list[str]:
        return self.app.orders(self.session.session_id)


# -- logon ---------------------------------------------------------------------------------------


def test_a_logon_is_answered_with_logon_echoing_the_heartbeat_interval() -> None:
    async def scenario() -> None:
        w = World()
        # WHEN the counterparty logs on with HeartBtInt 30
        ok = await w.session.logon(w.wire, w.peer.logon(30))
        # THEN it is accepted: Logon back (seq 1), the application told, sequence numbers 2/2
        assert ok
        (answer,) = w.wire.take()
        assert (answer.msg_type, answer.get(108), answer.get(34), answer.get(98)) == ("A", "30", "1", "0")
        assert (answer.get(49), answer.get(56)) == (ACCEPTOR, CLIENT)
        assert w.app.logons == [w.session.session_id]
        assert await w.store.get_seq_nums(w.session.session_id) == (2, 2)

    run(scenario())


@pytest.mark.parametrize(
    ("extra", "heartbeat", "text"),
    [
        pytest.param(((553, CLIENT), (554, "wrong")), 30, "Logon refused", id="password"),
        pytest.param((), 30, "Logon refused", id="password-missing"),
        pytest.param(((553, CLIENT), (554, "s3cret")), 0, "HeartBtInt 0 out of range 1..60", id="heartbeat-low"),
        pytest.param(((553, CLIENT), (554, "s3cret")), 61, "HeartBtInt 61 out of range 1..60", id="heartbeat-high"),
    ],
)
def test_a_logon_breaking_a_check_gets_logout_and_the_connection_is_closed(
    extra: tuple[tuple[int, object], ...], heartbeat: int, text: str
) -> None:
    def check(username: str | None, password: str | None) -> bool:
        return username == CLIENT and hmac.compare_digest((password or "").encode(), b"s3cret")

    async def scenario() -> None:
        w = World(password_check=check, max_heartbeat=60)
        ok = await w.session.logon(w.wire, w.peer.logon(heartbeat, *extra))
        assert not ok
        (logout,) = w.wire.take()
        assert (logout.msg_type, logout.get(58)) == ("5", text)
        assert w.wire.closed and not w.session.logged_on and w.app.logons == []

    run(scenario())


def test_the_right_password_logs_on() -> None:
    seen: list[tuple[str | None, str | None]] = []

    def check(username: str | None, password: str | None) -> bool:
        seen.append((username, password))
        return hmac.compare_digest((password or "").encode(), b"s3cret")

    async def scenario() -> None:
        w = World(password_check=check)
        assert await w.session.logon(w.wire, w.peer.logon(30, (553, CLIENT), (554, "s3cret")))
        assert seen == [(CLIENT, "s3cret")]

    run(scenario())


def test_a_logon_whose_sending_time_is_off_by_more_than_max_latency_is_refused() -> None:
    async def scenario() -> None:
        w = World(max_latency=120)
        late = parse(w.peer.frame("A", (98, "0"), (108, 30), sending_time=START - timedelta(seconds=121)))
        assert not await w.session.logon(w.wire, late)
        assert [m.get(58) for m in w.wire.take()] == ["SendingTime accuracy problem"]

    run(scenario())


def test_a_second_logon_for_a_live_session_is_refused_and_the_first_connection_continues() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        intruder = Wire()
        # WHEN another connection logs on as the same session
        refused = await w.session.logon(intruder, Peer(w.clock).logon(30, seq=5))
        # THEN it is closed unanswered, and the first still works
        assert not refused and intruder.closed and intruder.sent == []
        answers = await w.feed(w.peer.frame("1", (112, "still-there")))
        assert [(m.msg_type, m.get(112)) for m in answers] == [("0", "still-there")]
        assert not w.wire.closed

    run(scenario())


def test_reset_seq_num_flag_starts_both_sides_at_one() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        await w.feed(w.peer.order("C1"))
        await w.session.disconnect()
        w.wire, w.peer = Wire(), Peer(w.clock)
        assert await w.session.logon(w.wire, w.peer.logon(30, (141, "Y")))
        (answer,) = w.wire.take()
        assert (answer.get(141), answer.get(34)) == ("Y", "1")
        assert (w.session.next_sender, w.session.next_target) == (2, 2)

    run(scenario())


# -- liveness -------------------------------------------------------------------------------------


def test_a_test_request_is_answered_by_a_heartbeat_with_its_id() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        answers = await w.feed(w.peer.frame("1", (112, "T-42")))
        assert [(m.msg_type, m.get(112)) for m in answers] == [("0", "T-42")]

    run(scenario())


def test_silence_brings_a_heartbeat_then_a_test_request_then_a_disconnect() -> None:
    async def scenario() -> None:
        w = await World().logged_on(heartbeat=10)
        # WHEN we have sent nothing for HeartBtInt: a Heartbeat
        w.clock.advance(10)
        await w.session.on_timer()
        assert w.wire.types() == ["0"]
        # WHEN the counterparty is silent past 1.2 x HeartBtInt: a TestRequest
        w.clock.advance(3)
        await w.session.on_timer()
        (test_request,) = w.wire.take()
        assert test_request.msg_type == "1" and test_request.get(112)
        # WHEN it stays silent to 2.4 x HeartBtInt: disconnect, the application told
        w.clock.advance(11)
        await w.session.on_timer()
        assert w.wire.closed and not w.session.logged_on
        assert w.app.logouts == [w.session.session_id]

    run(scenario())


def test_a_heartbeat_answering_the_test_request_keeps_the_session() -> None:
    async def scenario() -> None:
        w = await World().logged_on(heartbeat=10)
        w.clock.advance(13)
        await w.session.on_timer()
        test_id = next(m.get(112) for m in w.wire.take() if m.msg_type == "1")
        await w.feed(w.peer.frame("0", (112, test_id)))
        w.clock.advance(11)
        await w.session.on_timer()
        assert not w.wire.closed and w.session.logged_on

    run(scenario())


# -- sequence numbers -----------------------------------------------------------------------------


def test_a_gap_gets_a_resend_request_and_the_queued_message_waits_for_the_gap() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        # GIVEN orders 2 and 3 are lost; WHEN order seq 4 arrives
        lost = [w.peer.order("C2"), w.peer.order("C3")]
        answers = await w.feed(w.peer.order("C4"))
        # THEN a ResendRequest from 2 to infinity, and C4 not yet given to the application
        assert [(m.msg_type, m.get(7), m.get(16)) for m in answers] == [("2", "2", "0")]
        assert w.orders_seen() == []
        # WHEN the gap is resent (PossDupFlag=Y); THEN all three, in sequence order
        resent = [parse(f) for f in lost]
        for r in resent:
            r.fields.insert(4, (43, "Y"))
            r.fields.insert(5, (122, r.get(52) or ""))
        await w.feed(*(r.encode() for r in resent))
        assert w.orders_seen() == ["C2", "C3", "C4"]
        assert w.session.next_target == 5

    run(scenario())


def test_a_gap_filled_by_a_gap_fill_releases_the_queue() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        w.peer.seq = 5
        await w.feed(w.peer.order("C5"))
        await w.feed(w.peer.frame("4", (123, "Y"), (36, 5), seq=2, poss_dup=True))
        assert w.orders_seen() == ["C5"] and w.session.next_target == 6

    run(scenario())


def test_a_seq_num_too_low_without_poss_dup_logs_out_and_disconnects() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        await w.feed(w.peer.order("C2"))
        answers = await w.feed(w.peer.order("C2-again", seq=2))
        assert [(m.msg_type, m.get(58)) for m in answers] == [("5", "MsgSeqNum too low, expecting 3 but received 2")]
        assert w.wire.closed

    run(scenario())


def test_a_poss_dup_duplicate_is_ignored() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        await w.feed(w.peer.order("C2"))
        w.wire.take()
        answers = await w.feed(w.peer.order("C2", seq=2, poss_dup=True))
        assert answers == [] and w.orders_seen() == ["C2"] and not w.wire.closed
        assert w.session.next_target == 3

    run(scenario())


def test_a_garbled_frame_is_dropped_without_a_sequence_number_change() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        good = w.peer.order("C2")
        garbled = good[:-4] + b"000\x01"
        answers = await w.feed(garbled)
        assert answers == [] and w.session.next_target == 2
        await w.feed(good)
        assert w.orders_seen() == ["C2"]

    run(scenario())


def test_sequence_reset_gap_fill_and_reset_move_the_expected_number_and_never_lower_it() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        await w.feed(w.peer.frame("4", (123, "Y"), (36, 10)))
        assert w.session.next_target == 10
        await w.feed(w.peer.frame("4", (36, 20), seq=99))  # Reset mode: MsgSeqNum ignored
        assert w.session.next_target == 20
        answers = await w.feed(w.peer.frame("4", (36, 5), seq=1))
        (reject,) = answers
        assert (reject.msg_type, reject.get(373), reject.get(371)) == ("3", "5", "36")
        assert w.session.next_target == 20

    run(scenario())


# -- rejects and logout ---------------------------------------------------------------------------


def test_a_field_rule_broken_gets_reject_and_the_sequence_moves_on() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        bad = w.peer.frame("D", (11, "C2"), (55, "AAPL"), (54, "Z"), (60, utc_timestamp(START)), (38, "1"), (40, "1"))
        (reject,) = await w.feed(bad)
        assert [reject.get(t) for t in (45, 371, 372, 373, 58)] == [
            "2", "54", "D", "5", "Value is incorrect (out of range) for this tag"
        ]
        assert w.orders_seen() == []
        # THEN the next message (seq 3) is in sequence: no ResendRequest
        assert await w.feed(w.peer.order("C3")) != [] and w.orders_seen() == ["C3"]

    run(scenario())


def test_empty_values_pass_when_validate_fields_have_values_is_off() -> None:
    async def scenario() -> None:
        w = await World(validate_fields_have_values=False).logged_on()
        await w.feed(w.peer.frame(
            "D", (11, "C2"), (1, ""), (55, "AAPL"), (54, "1"), (60, utc_timestamp(START)), (38, "1"), (40, "1")))
        assert w.orders_seen() == ["C2"]

    run(scenario())


def test_a_wrong_comp_id_gets_reject_9_then_logout() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        answers = await w.feed(w.peer.frame("0", comp=("OTHER", ACCEPTOR)))
        assert [(m.msg_type, m.get(373)) for m in answers] == [("3", "9"), ("5", None)]
        assert w.wire.closed

    run(scenario())


def test_a_sending_time_off_by_more_than_max_latency_gets_reject_10_then_logout() -> None:
    async def scenario() -> None:
        w = await World(max_latency=5).logged_on()
        answers = await w.feed(w.peer.frame("0", sending_time=START + timedelta(seconds=6)))
        assert [(m.msg_type, m.get(373), m.get(371)) for m in answers] == [("3", "10", "52"), ("5", None, None)]
        assert w.wire.closed

    run(scenario())


def test_another_begin_string_or_a_missing_seq_num_logs_out() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        raw = w.peer.frame("0").replace(b"FIX.4.4", b"FIX.4.2")
        raw = raw[:-7] + b"10=%03d\x01" % (sum(raw[:-7]) % 256)
        assert [(m.msg_type, m.get(58)) for m in await w.feed(raw)] == [("5", "Incorrect BeginString")]
        w2 = await World().logged_on()
        no_seq = Message([(35, "0"), (49, CLIENT), (56, ACCEPTOR), (52, utc_timestamp(START))]).encode()
        assert [(m.msg_type, m.get(58)) for m in await w2.feed(no_seq)] == [("5", "MsgSeqNum(34) not found")]
        assert w.wire.closed and w2.wire.closed

    run(scenario())


def test_an_application_type_we_do_not_take_gets_business_message_reject() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        (answer,) = await w.feed(w.peer.frame("AE", (571, "R1")))
        assert [answer.get(t) for t in (35, 45, 372, 380)] == ["j", "2", "AE", "3"]
        assert w.session.next_target == 3

    run(scenario())


def test_the_business_message_reject_helper_builds_a_valid_j() -> None:
    msg = business_reject("D", 5, "Account required", ref_seq=7, ref_id="C9")
    for tag, value in ((49, ACCEPTOR), (56, CLIENT), (34, 3), (52, utc_timestamp(START))):
        msg.fields.insert(1, (tag, str(value)))
    decoded = codec.decode(msg.encode())
    assert [decoded.get(t) for t in (45, 372, 379, 380, 58)] == ["7", "D", "C9", "5", "Account required"]


def test_a_logout_is_answered_then_disconnected_and_reset_on_logout_resets() -> None:
    async def scenario() -> None:
        w = await World(reset_on_logout=True).logged_on()
        answers = await w.feed(w.peer.frame("5"))
        assert [m.msg_type for m in answers] == ["5"]
        assert w.wire.closed and w.app.logouts == [w.session.session_id]
        assert await w.store.get_seq_nums(w.session.session_id) == (1, 1)

    run(scenario())


def test_reset_on_disconnect_and_reset_on_logon_reset_the_sequence_numbers() -> None:
    async def scenario() -> None:
        w = await World(reset_on_disconnect=True).logged_on()
        await w.session.disconnect()
        assert await w.store.get_seq_nums(w.session.session_id) == (1, 1)
        w2 = await World(reset_on_logon=True).logged_on()
        await w2.feed(w2.peer.order("C2"))
        await w2.session.disconnect()
        w2.wire, w2.peer = Wire(), Peer(w2.clock)
        assert await w2.session.logon(w2.wire, w2.peer.logon())
        assert w2.wire.take()[0].get(34) == "1"

    run(scenario())


def test_an_application_failure_is_a_business_reject_and_the_session_goes_on() -> None:
    class Failing(AckApp):
        async def on_message(self, session: Any, message: Message) -> None:
            raise RuntimeError("boom")

    async def scenario() -> None:
        w = World()
        w.session = Session(w.config, w.store, Failing(), w.clock)
        await w.logged_on()
        (answer,) = await w.feed(w.peer.order("C2"))
        assert [answer.get(t) for t in (35, 45, 380)] == ["j", "2", "4"]
        assert w.session.next_target == 3 and not w.wire.closed

    run(scenario())


# -- resend and delivery after a disconnection ----------------------------------------------------


def test_a_resend_request_gets_app_messages_with_poss_dup_and_gap_fills_for_admin() -> None:
    async def scenario() -> None:
        w = await World().logged_on()  # our seq 1: Logon
        await w.session.send(report("C1", 1))  # 2
        await w.feed(w.peer.frame("1", (112, "x")))  # our 3: Heartbeat
        await w.session.send(report("C2", 2))  # 4
        first_sent = w.wire.take()
        w.clock.advance(30)
        answers = await w.feed(w.peer.frame("2", (7, 1), (16, 0)))
        got = [(m.msg_type, m.get(34), m.get(43), m.get(123), m.get(36), m.get(11)) for m in answers]
        assert got == [
            ("4", "1", "Y", "Y", "2", None),
            ("8", "2", "Y", None, None, "C1"),
            ("4", "3", "Y", "Y", "4", None),
            ("8", "4", "Y", None, None, "C2"),
        ]
        assert answers[1].get(122) == first_sent[0].get(52)
        assert answers[1].get(52) == utc_timestamp(w.clock())

    run(scenario())


def test_messages_sent_while_disconnected_are_delivered_by_resend_after_the_next_logon() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        await w.session.disconnect()
        # GIVEN two reports produced while the session is down
        await w.session.send(report("C1", 1))
        await w.session.send(report("C2", 2))
        assert w.wire.sent == []
        # WHEN the counterparty logs on again, expecting our seq 2
        w.wire = Wire()
        assert await w.session.logon(w.wire, w.peer.logon())
        (answer,) = w.wire.take()
        assert answer.get(34) == "4"  # our Logon tells it that 2 and 3 are missing
        answers = await w.feed(w.peer.frame("2", (7, 2), (16, 0)))
        # THEN it gets both reports, flagged PossDupFlag, then a gap fill over the Logon
        assert [(m.msg_type, m.get(11), m.get(43)) for m in answers] == [
            ("8", "C1", "Y"), ("8", "C2", "Y"), ("4", None, "Y")
        ]

    run(scenario())


def test_settings_read_quickfix_names_and_refuse_unknown_ones() -> None:
    config = SessionConfig.from_settings(
        ACCEPTOR, CLIENT,
        {"MinHeartBtInt": "5", "MaxHeartBtInt": "60", "ResetOnLogon": "Y", "ResetOnLogout": "N",
         "ResetOnDisconnect": "Y", "MaxLatency": "30", "ValidateFieldsHaveValues": "N",
         "ValidateUserDefinedFields": "N"},
        accounts=("ACC1",),
    )
    assert (config.min_heartbeat, config.max_heartbeat, config.reset_on_logon, config.reset_on_logout,
            config.reset_on_disconnect, config.max_latency) == (5, 60, True, False, True, 30.0)
    assert config.validation == codec.ValidationOptions(False, False)
    assert config.session_id == f"FIX.4.4:{ACCEPTOR}->{CLIENT}"
    with pytest.raises(ValueError, match="HeartBeatInt"):
        SessionConfig.from_settings(ACCEPTOR, CLIENT, {"HeartBeatInt": "5"})
    for bad in ({"MinHeartBtInt": "0"}, {"MaxHeartBtInt": "100000"}, {"MaxLatency": "nan"}, {"MaxLatency": "-1"},
                {"MaxLatency": "soon"}, {"LogoutTimeout": "0"}):
        with pytest.raises(ValueError):
            SessionConfig.from_settings(ACCEPTOR, CLIENT, bad)


def test_a_logon_with_a_seq_num_too_low_is_logged_out_and_one_too_high_gets_a_resend_request() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        await w.feed(w.peer.order("C2"))
        await w.session.disconnect()
        # WHEN the counterparty comes back having forgotten its numbers (Logon seq 1, we expect 3)
        w.wire = Wire()
        assert not await w.session.logon(w.wire, Peer(w.clock).logon(30))
        assert [(m.msg_type, m.get(58)) for m in w.wire.take()] == [
            ("5", "MsgSeqNum too low, expecting 3 but received 1")
        ]
        # WHEN it comes back with seq 5: logged on, then a ResendRequest for 3 onwards
        w.wire = Wire()
        assert await w.session.logon(w.wire, w.peer.logon(30, seq=5))
        assert [(m.msg_type, m.get(7)) for m in w.wire.take()] == [("A", None), ("2", "3")]

    run(scenario())


def test_a_report_racing_a_logon_never_goes_out_before_the_logon_answer() -> None:
    class SlowStore(MemoryStore):
        async def save_sent(self, session_id: str, seq: int, frame: bytes) -> None:
            for _ in range(5):
                await asyncio.sleep(0)  # a store round trip: other tasks run meanwhile
            await super().save_sent(session_id, seq, frame)

    async def scenario() -> None:
        w = World()
        w.session = Session(w.config, SlowStore(), w.app, w.clock)
        # WHEN a report is being stored while the counterparty's Logon arrives
        sending = asyncio.create_task(w.session.send(report("C1", 1)))
        await asyncio.sleep(0)
        assert await w.session.logon(w.wire, w.peer.logon())
        await sending
        # THEN our first message is the Logon (seq 2: the report took 1, it will be resent on request)
        sent = w.wire.take()
        assert [(m.msg_type, m.get(34)) for m in sent] == [("A", "2")]

    run(scenario())


def test_a_poss_dup_whose_orig_sending_time_is_after_its_sending_time_gets_reject_10_and_logout() -> None:
    async def scenario() -> None:
        w = await World().logged_on()
        await w.feed(w.peer.order("C2"))
        w.wire.take()
        dup = parse(w.peer.order("C2", seq=2))
        dup.fields.insert(4, (43, "Y"))
        dup.fields.insert(5, (122, utc_timestamp(START + timedelta(seconds=5))))
        answers = await w.feed(dup.encode())
        assert [(m.msg_type, m.get(373), m.get(371)) for m in answers] == [("3", "10", "122"), ("5", None, None)]
        # and a PossDup without OrigSendingTime is refused on tag 122
        w2 = await World().logged_on()
        await w2.feed(w2.peer.order("C2"))
        w2.wire.take()
        bare = parse(w2.peer.order("C2", seq=2))
        bare.fields.insert(4, (43, "Y"))
        (reject,) = await w2.feed(bare.encode())
        assert (reject.get(373), reject.get(371)) == ("1", "122")

    run(scenario())


def test_any_message_answers_a_pending_test_request() -> None:
    async def scenario() -> None:
        w = await World().logged_on(heartbeat=10)
        w.clock.advance(13)
        await w.session.on_timer()
        assert "1" in w.wire.types()
        # WHEN an order arrives instead of the Heartbeat, then silence again
        await w.feed(w.peer.order("C2"))
        w.wire.take()
        w.clock.advance(12)
        await w.session.on_timer()
        # THEN the silence is counted from the order: a new TestRequest, no disconnect
        assert w.wire.types() == ["1"]
        assert not w.wire.closed

    run(scenario())


# -- sequence numbers beyond any store -------------------------------------------------------------

HUGE = "9" * 39  # above 10**18: no DynamoDB number, no int the session may keep
ENORMOUS = "9" * 5000  # beyond Python's int-from-text limit


@pytest.mark.parametrize(
    ("msg_type", "fields", "seq", "tag"),
    [
        pytest.param("4", ((123, "Y"), (36, HUGE)), None, 36, id="gap-fill-new-seq-no"),
        pytest.param("4", ((36, HUGE),), None, 36, id="reset-new-seq-no"),
        pytest.param("4", ((36, ENORMOUS),), None, 36, id="reset-new-seq-no-5000-digits"),
        pytest.param("1", ((112, "x"),), HUGE, 34, id="msg-seq-num"),
        pytest.param("1", ((112, "x"),), ENORMOUS, 34, id="msg-seq-num-5000-digits"),
        pytest.param("2", ((7, HUGE), (16, 0)), None, 7, id="begin-seq-no"),
        pytest.param("2", ((7, 1), (16, ENORMOUS)), None, 16, id="end-seq-no"),
    ],
)
def test_a_sequence_number_above_the_bound_gets_reject_5_and_changes_nothing(
    msg_type: str, fields: tuple[tuple[int, object], ...], seq: str | None, tag: int
) -> None:
    async def scenario() -> None:
        # GIVEN a logged-on session
        w = await World().logged_on()
        before = await w.store.get_seq_nums(w.session.session_id)
        target = w.session.next_target
        # WHEN the counterparty sends a sequence number above 10**18
        frame = w.peer.frame(msg_type, *fields, seq=seq)  # type: ignore[arg-type]
        if seq is None:
            w.peer.seq -= 1  # the refused message is not counted: the next one carries its number
        answers = await w.feed(frame)
        # THEN Reject 373=5 naming the field, and neither the memory nor the store moved
        assert [(m.msg_type, m.get(373), m.get(371)) for m in answers] == [("3", "5", str(tag))]
        assert w.session.next_target == target
        assert (await w.store.get_seq_nums(w.session.session_id))[1] == before[1]
        # AND the session goes on
        ok = await w.feed(w.peer.frame("1", (112, "after")))
        assert [(m.msg_type, m.get(112)) for m in ok] == [("0", "after")]

    run(scenario())


def test_a_logon_with_a_seq_num_above_the_bound_is_refused_without_touching_the_session() -> None:
    async def scenario() -> None:
        w = World()
        assert not await w.session.logon(w.wire, w.peer.logon(30, seq=HUGE))  # type: ignore[arg-type]
        assert w.wire.closed and not w.session.logged_on
        assert await w.store.get_seq_nums(w.session.session_id) == (1, 1)

    run(scenario())


def test_a_failed_store_write_of_a_sequence_reset_leaves_the_expected_number_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def scenario() -> None:
        # GIVEN a logged-on session whose store refuses the next write of the expected number
        w = await World().logged_on()
        target = w.session.next_target

        async def refused(session_id: str, seq: int) -> None:
            raise OSError("store unavailable")

        monkeypatch.setattr(w.store, "set_next_target", refused)
        # WHEN a SequenceReset-GapFill moves the number
        with pytest.raises(OSError):
            await w.feed(w.peer.frame("4", (123, "Y"), (36, 10)))
        # THEN the session's expected number did not move either (memory follows the store)
        assert w.session.next_target == target

    run(scenario())


# -- logon: the password off the loop and before any state; one winner of two Logons ----------------


def test_the_password_is_checked_off_the_event_loop() -> None:
    threads: list[int] = []

    def check(username: str | None, password: str | None) -> bool:
        threads.append(threading.get_ident())
        return hmac.compare_digest((password or "").encode(), b"s3cret")

    async def scenario() -> None:
        # GIVEN a session with a password
        w = World(password_check=check)
        # WHEN the counterparty logs on with it
        assert await w.session.logon(w.wire, w.peer.logon(30, (553, CLIENT), (554, "s3cret")))
        # THEN the check ran on another thread than the event loop's
        assert threads and threads[0] != threading.get_ident()

    run(scenario())


def test_a_refused_logon_moves_no_sequence_number_of_the_session() -> None:
    def check(username: str | None, password: str | None) -> bool:
        return hmac.compare_digest((password or "").encode(), b"s3cret")

    async def scenario() -> None:
        # GIVEN a session that logged on, exchanged messages and disconnected
        w = World(password_check=check)
        assert await w.session.logon(w.wire, w.peer.logon(30, (553, CLIENT), (554, "s3cret")))
        await w.feed(w.peer.frame("1", (112, "t")))
        await w.session.disconnect()
        before = await w.store.get_seq_nums(w.session.session_id)
        memory = (w.session.next_sender, w.session.next_target)
        # WHEN someone logs on with a wrong password, three times
        for _ in range(3):
            wire = Wire()
            assert not await w.session.logon(wire, Peer(w.clock).logon(30, (553, CLIENT), (554, "guess")))
            # THEN it gets Logout (MsgSeqNum 1) and is closed
            assert [(m.msg_type, m.get(34), m.get(58)) for m in wire.sent] == [("5", "1", "Logon refused")]
            assert wire.closed
        # AND the session's numbers, in memory and in the store, did not move
        assert await w.store.get_seq_nums(w.session.session_id) == before
        assert (w.session.next_sender, w.session.next_target) == memory

    run(scenario())


class SlowStore(MemoryStore):
    """The in-memory store, yielding to the event loop on a read as a real store's I/O does."""

    async def get_seq_nums(self, session_id: str) -> tuple[int, int]:
        await asyncio.sleep(0)
        return await super().get_seq_nums(session_id)


def test_of_two_simultaneous_logons_only_one_succeeds() -> None:
    async def scenario() -> None:
        # GIVEN a session whose store does real I/O
        w = World()
        w.store = SlowStore()
        w.session = Session(w.config, w.store, w.app, w.clock)
        first, second = Wire(), Wire()
        # WHEN two connections log on as it at the same moment
        results = await asyncio.gather(
            w.session.logon(first, Peer(w.clock).logon(30)), w.session.logon(second, Peer(w.clock).logon(30, seq=5))
        )
        # THEN one is logged on, the other closed, and the session has one connection
        assert sorted(results) == [False, True]
        winner, loser = (first, second) if results[0] else (second, first)
        assert w.session.transport is winner and loser.closed and not winner.closed
        assert w.app.logons == [w.session.session_id]

    run(scenario())
