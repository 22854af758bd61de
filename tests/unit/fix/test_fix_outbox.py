"""A busy session's application messages: those given while earlier ones are being stored are
stored together (one store request), numbered and written in the order given, each only once it is
stored; a failed store request fails its own messages only, numbers nothing and writes nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from fix_peer import report
from nexus_fix.codec import parse
from nexus_fix.session import OUTBOX_BATCH, Session
from nexus_fix.store import MemoryStore
from test_fix_session import Wire, World, run


class CountingStore(MemoryStore):
    """A store whose requests take a few turns of the event loop (a round trip), counted; the
    requests listed in ``fail`` (by number, from 1) raise."""

    def __init__(self, fail: Sequence[int] = (), hold: Sequence[int] = ()) -> None:
        super().__init__()
        self.batches: list[list[int]] = []
        self.fail = set(fail)
        self.hold = set(hold)  # requests (by number) that wait for ``release``
        self.release = asyncio.Event()
        self.wire: Wire | None = None
        self.early: list[int] = []  # messages on the wire before their request was answered

    def _on_wire(self, seqs: list[int]) -> list[int]:
        written = {int(m.get(34) or 0) for m in self.wire.sent} if self.wire is not None else set()
        return [seq for seq in seqs if seq in written]

    async def save_sent_many(self, session_id: str, messages: Sequence[tuple[int, bytes]]) -> None:
        seqs = [seq for seq, _ in messages]
        self.batches.append(seqs)
        for _ in range(5):
            await asyncio.sleep(0)
            self.early += self._on_wire(seqs)
        if len(self.batches) in self.hold:
            await self.release.wait()
        if len(self.batches) in self.fail:
            raise ConnectionError("store unavailable")
        await super().save_sent_many(session_id, messages)


async def _logged_on(store: CountingStore) -> World:
    w = World()
    w.store = store
    w.session = Session(w.config, store, w.app, w.clock)
    await w.logged_on()
    store.wire = w.wire
    return w


def test_messages_given_while_one_is_stored_go_together_in_order_once_stored() -> None:
    async def scenario() -> None:
        store = CountingStore()
        w = await _logged_on(store)
        first_seq = w.session.next_sender
        # WHEN 40 reports are given at once (as 40 orders' reports are)
        await asyncio.gather(*(w.session.send(report(f"C{n}", n)) for n in range(40)))
        # THEN the first is stored alone, the 39 given meanwhile in two requests (at most 25 each)
        assert [len(b) for b in store.batches] == [1, OUTBOX_BATCH, 39 - OUTBOX_BATCH]
        seqs = [seq for batch in store.batches for seq in batch]
        assert seqs == list(range(first_seq, first_seq + 40))
        # AND they went out in the order given, numbered as stored, each one stored
        assert store.early == []  # none was written before its request was answered
        sent = w.wire.take()
        assert [m.get(11) for m in sent] == [f"C{n}" for n in range(40)]
        assert [int(m.get(34) or 0) for m in sent] == seqs
        assert [s for s, _ in await store.get_sent(w.session.session_id, first_seq, first_seq + 39)] == seqs
        assert w.session.next_sender == first_seq + 40

    run(scenario())


def test_a_failed_store_request_fails_its_messages_only_and_numbers_nothing() -> None:
    async def scenario() -> None:
        store = CountingStore(fail=[2])  # the second request (the messages given meanwhile) fails
        w = await _logged_on(store)
        first_seq = w.session.next_sender
        results = await asyncio.gather(*(w.session.send(report(f"C{n}", n)) for n in range(4)),
                                       return_exceptions=True)  # fmt: skip
        # THEN the first was sent; the three stored together got the store's error
        assert results[0] is None
        assert all(isinstance(r, ConnectionError) for r in results[1:])
        (sent,) = w.wire.take()
        assert (sent.get(11), sent.get(34)) == ("C0", str(first_seq))
        # AND the next message takes the number the failed ones did not keep
        assert w.session.next_sender == first_seq + 1
        await w.session.send(report("C9", 9))
        (after,) = w.wire.take()
        assert (after.get(11), after.get(34)) == ("C9", str(first_seq + 1))

    run(scenario())


def test_messages_given_while_disconnected_are_stored_together_and_resent_on_request() -> None:
    async def scenario() -> None:
        store = CountingStore()
        w = await _logged_on(store)
        await w.session.disconnect()
        first_seq = w.session.next_sender
        await asyncio.gather(*(w.session.send(report(f"C{n}", n)) for n in range(5)))
        # THEN nothing was written; all five are stored, and so is the next number
        assert w.wire.take() == []
        assert await store.get_seq_nums(w.session.session_id) == (first_seq + 5, w.session.next_target)
        stored = await store.get_sent(w.session.session_id, first_seq, first_seq + 4)
        assert [seq for seq, _ in stored] == list(range(first_seq, first_seq + 5))

    run(scenario())


def test_a_sender_cancelled_while_it_waits_is_never_sent_and_the_others_are() -> None:
    async def scenario() -> None:
        store = CountingStore()
        w = await _logged_on(store)
        first_seq = w.session.next_sender
        a = asyncio.create_task(w.session.send(report("A", 1)))
        await asyncio.sleep(0)  # A is being stored
        b = asyncio.create_task(w.session.send(report("B", 2)))
        c = asyncio.create_task(w.session.send(report("C", 3)))
        await asyncio.sleep(0)  # B and C wait
        b.cancel()
        await asyncio.gather(a, c)
        assert b.cancelled()
        sent = w.wire.take()
        assert [(m.get(11), int(m.get(34) or 0)) for m in sent] == [("A", first_seq), ("C", first_seq + 1)]

    run(scenario())


def test_a_holder_cancelled_while_storing_fails_the_others_of_its_request_and_sends_none() -> None:
    async def scenario() -> None:
        store = CountingStore(hold=[2])
        w = await _logged_on(store)
        first_seq = w.session.next_sender
        a = asyncio.create_task(w.session.send(report("A", 1)))
        await asyncio.sleep(0)
        b = asyncio.create_task(w.session.send(report("B", 2)))
        c = asyncio.create_task(w.session.send(report("C", 3)))
        await a  # B now stores B and C together, and is held there
        for _ in range(10):
            await asyncio.sleep(0)
        assert store.batches[-1] == [first_seq + 1, first_seq + 2]
        b.cancel()
        results = await asyncio.gather(b, c, return_exceptions=True)
        assert isinstance(results[0], asyncio.CancelledError) and isinstance(results[1], ConnectionError)
        assert [m.get(11) for m in w.wire.take()] == ["A"]
        assert w.session.next_sender == first_seq + 1  # neither was numbered

    run(scenario())


def test_a_session_whose_numbers_cannot_be_read_sends_nothing_and_keeps_nothing_for_later() -> None:
    class Unreadable(CountingStore):
        def __init__(self) -> None:
            super().__init__()
            self.down = True

        async def get_seq_nums(self, session_id: str) -> tuple[int, int]:
            await asyncio.sleep(0)  # a round trip: more messages are given meanwhile
            if self.down:
                raise ConnectionError("store unavailable")
            return await super().get_seq_nums(session_id)

    async def scenario() -> None:
        store = Unreadable()
        w = World()
        session = Session(w.config, store, w.app, w.clock)
        sends = asyncio.gather(*(session.send(report(f"LOST{n}", n)) for n in range(3)), return_exceptions=True)
        outcome = await asyncio.wait_for(sends, 5)  # every sender is answered
        assert all(isinstance(o, ConnectionError) for o in outcome)
        store.down = False
        await session.send(report("KEPT", 2))
        # THEN only the second was stored (as message 1): the first is not sent later
        assert [(seq, parse(frame).get(11)) for seq, frame in await store.get_sent(session.session_id, 1, 9)] == [
            (1, "KEPT")
        ]

    run(scenario())


def test_a_heartbeat_due_while_reports_keep_coming_is_not_held_behind_them() -> None:
    async def scenario() -> None:
        store = CountingStore(hold=[1])
        w = await _logged_on(store)
        a = asyncio.create_task(w.session.send(report("A", 1)))
        for _ in range(10):
            await asyncio.sleep(0)  # A is being stored, and held there
        w.clock.advance(w.session.heartbeat)  # a heartbeat is due
        timer = asyncio.create_task(w.session.on_timer())
        await asyncio.sleep(0)
        later = [asyncio.create_task(w.session.send(report(f"C{n}", n))) for n in range(60)]
        await asyncio.sleep(0)
        store.release.set()
        await asyncio.gather(a, timer, *later)
        # THEN the heartbeat went out right after the message being stored when it was due,
        # not after the 60 given after it
        assert [m.msg_type for m in w.wire.take()][:3] == ["8", "0", "8"]

    run(scenario())
