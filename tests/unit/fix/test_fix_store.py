"""The session message store on DynamoDB (moto, the table as ``stacks/fix.yaml`` declares it):
sequence numbers and sent application messages survive a new store object (a gateway restart),
a reset hides the messages of before it, and a session resumes from the table."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import boto3
from fix_peer import ACCEPTOR, AckApp, report
from nexus_fix.codec import Message, parse, utc_timestamp
from nexus_fix.session import Session, SessionConfig
from nexus_fix.store import DynamoStore, MemoryStore

SID = f"FIX.4.4:{ACCEPTOR}->CLIENT1"
NOW = datetime(2026, 1, 5, 14, 30, tzinfo=UTC)


def table(aws: Any) -> Any:
    return boto3.resource("dynamodb", region_name="us-east-1").Table(aws.table_name("FixMessageStoreTable"))


def test_sequence_numbers_and_sent_messages_survive_a_new_store_object_and_a_reset_forgets_them(aws: Any) -> None:
    async def scenario() -> None:
        # GIVEN a session never seen: 1/1
        first = DynamoStore(table(aws), clock=lambda: NOW)
        assert await first.get_seq_nums(SID) == (1, 1)
        # WHEN messages 1..3 are stored and the target number moves
        for seq in (1, 2, 3):
            await first.save_sent(SID, seq, b"frame-%d" % seq)
        await first.set_next_target(SID, 7)
        # THEN a new store object (a restarted gateway) reads them back
        second = DynamoStore(table(aws), clock=lambda: NOW)
        assert await second.get_seq_nums(SID) == (4, 7)
        assert await second.get_sent(SID, 2, 9) == [(2, b"frame-2"), (3, b"frame-3")]
        assert await second.get_sent(SID, 5, 4) == []
        # WHEN the session is reset (ResetOnLogon, ...) and sends again
        store = second
        await store.reset(SID)
        await store.save_sent(SID, 1, b"new-1")
        # THEN seq 2 and 3 of before the reset are never resent, by this store or a new one
        assert await store.get_seq_nums(SID) == (2, 1)
        assert await store.get_sent(SID, 1, 3) == [(1, b"new-1")]
        assert await DynamoStore(table(aws)).get_sent(SID, 1, 3) == [(1, b"new-1")]

    asyncio.run(scenario())


def test_the_memory_store_keeps_the_same_contract() -> None:
    async def scenario() -> None:
        store = MemoryStore()
        await store.save_sent(SID, 1, b"a")
        await store.save_sent(SID, 2, b"b")
        await store.set_next_target(SID, 5)
        assert await store.get_seq_nums(SID) == (3, 5)
        assert await store.get_sent(SID, 2, 0x7FFFFFFF) == [(2, b"b")]
        await store.reset(SID)
        assert (await store.get_seq_nums(SID), await store.get_sent(SID, 1, 9)) == ((1, 1), [])

    asyncio.run(scenario())


def test_a_session_resumes_from_the_table_after_a_restart(aws: Any) -> None:
    class Wire:
        def __init__(self) -> None:
            self.sent: list[bytes] = []
            self.closed = False
            self.unprocessed = 0

        def write(self, data: bytes) -> None:
            self.sent.append(data)

        def close(self) -> None:
            self.closed = True

    async def scenario() -> None:
        config = SessionConfig(ACCEPTOR, "CLIENT1")
        # GIVEN a session that sent a report, then went down with the gateway
        before = Session(config, DynamoStore(table(aws), clock=lambda: NOW), AckApp(), clock=lambda: NOW)
        await before.send(report("C1", 1))
        # WHEN a new gateway's session is asked for a resend after the client logs on
        after = Session(config, DynamoStore(table(aws), clock=lambda: NOW), AckApp(), clock=lambda: NOW)
        wire = Wire()

        def frame(mt: str, seq: int, *fields: tuple[int, object]) -> bytes:
            return Message.new(mt, (49, "CLIENT1"), (56, ACCEPTOR), (34, seq), (52, utc_timestamp(NOW)),
                               *fields).encode()

        assert await after.logon(wire, parse(frame("A", 1, (98, "0"), (108, 30))))
        await after.on_frame(frame("2", 2, (7, 1), (16, 0)))
        got = [parse(f) for f in wire.sent]
        # THEN its Logon continues the numbers (seq 2), and the report comes back as a possible duplicate
        assert [(m.msg_type, m.get(34), m.get(11), m.get(43)) for m in got] == [
            ("A", "2", None, None), ("8", "1", "C1", "Y"), ("4", "2", None, "Y")
        ]

    asyncio.run(scenario())


def test_messages_stored_together_are_read_back_as_if_stored_one_by_one(aws: Any) -> None:
    async def scenario() -> None:
        store = DynamoStore(table(aws), clock=lambda: NOW)
        # WHEN 30 messages are stored at once (two batch requests), then one more alone
        await store.save_sent_many(SID, [(seq, b"frame-%d" % seq) for seq in range(1, 31)])
        await store.save_sent_many(SID, [(31, b"frame-31")])
        # THEN a restarted gateway resends them all and numbers the next one after them
        again = DynamoStore(table(aws), clock=lambda: NOW)
        assert await again.get_seq_nums(SID) == (32, 1)
        assert await again.get_sent(SID, 1, 31) == [(seq, b"frame-%d" % seq) for seq in range(1, 32)]
        # AND after a reset, messages stored together belong to the new epoch only
        await again.reset(SID)
        await again.save_sent_many(SID, [(1, b"new-1"), (2, b"new-2")])
        assert await DynamoStore(table(aws)).get_sent(SID, 1, 31) == [(1, b"new-1"), (2, b"new-2")]

    asyncio.run(scenario())
