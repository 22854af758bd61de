"""The embedded AWS deletes an SQS message as moto does (``_queue_delete_message``), in one pass,
and a batch of them in one pass for the whole batch (``_delete_message_batch``): the same messages
left, in order, the same in flight and deleted, and the same refusal of an unknown receipt
handle, whatever the queue holds and the handles asked for."""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend

from nexus.local.aws_server import (
    _delete_message_batch,
    _moto_delete_message_batch,
    _moto_queue_delete_message,
    _queue_delete_message,
)

HANDLES = [f"h{i}" for i in range(12)]  # a small pool: deletes hit current, old, deleted and unknown handles

messages = st.lists(
    st.tuples(
        st.none() | st.sampled_from(HANDLES),  # the current receipt handle (None: never received)
        st.lists(st.sampled_from(HANDLES), max_size=2),  # the handles of earlier receives
        st.booleans(),  # in flight
    ),
    max_size=8,
)


def _queue(spec: list[tuple[str | None, list[str], bool]], deleted: set[str]) -> Queue:
    queue = Queue("q", region="us-east-1", account_id="123456789012")
    for index, (handle, old, pending) in enumerate(spec):
        message = Message(f"m{index}", "body")
        message.receipt_handle = handle
        message._old_receipt_handles = list(old)
        queue._messages.append(message)
        if pending:
            queue.pending_messages.add(message)
    queue.deleted_messages.update(deleted)
    return queue


def _state(queue: Queue) -> tuple[Any, ...]:
    return (
        [m.id for m in queue._messages],
        sorted(m.id for m in queue.pending_messages),
        sorted(queue.deleted_messages, key=str),  # None too: a message never received, found by an old handle
    )


def _delete(delete: Any, queue: Queue, handle: str) -> str:
    try:
        delete(queue, handle)
    except ReceiptHandleIsInvalid:
        return "invalid"
    return "ok"


@settings(max_examples=400, deadline=None)
@given(messages, st.sets(st.sampled_from(HANDLES), max_size=3), st.lists(st.sampled_from(HANDLES), max_size=6))
def test_deletes_as_moto_does(spec: list[tuple[str | None, list[str], bool]], deleted: set[str],
                              handles: list[str]) -> None:  # fmt: skip
    theirs, ours = _queue(spec, deleted), _queue(spec, deleted)
    for handle in handles:
        assert _delete(_queue_delete_message, ours, handle) == _delete(_moto_queue_delete_message, theirs, handle)
        assert _state(ours) == _state(theirs)


def test_a_message_is_found_by_an_earlier_handle_and_its_handles_are_all_deleted() -> None:
    queue = _queue([("h1", ["h0"], True), ("h2", [], False)], set())
    _queue_delete_message(queue, "h0")
    assert _state(queue) == (["m1"], [], ["h0", "h1"])
    _queue_delete_message(queue, "h1")  # deleted before: nothing to do, no error
    assert _delete(_queue_delete_message, queue, "h9") == "invalid"
    assert _state(queue) == (["m1"], [], ["h0", "h1"])


def _batch(delete: Any, queue: Queue, handles: list[str]) -> tuple[list[str], list[dict[str, str]]]:
    backend = SQSBackend("us-east-1", "123456789012")
    backend.queues["q"] = queue
    with mock.patch.object(Queue, "delete_message", _moto_queue_delete_message):  # moto's, whatever is installed
        result: tuple[list[str], list[dict[str, str]]] = delete(
            backend, "q", [{"Id": f"e{i}", "ReceiptHandle": handle} for i, handle in enumerate(handles)]
        )
    return result


@st.composite
def unique_handles(draw: st.DrawFn) -> list[tuple[str | None, list[str], bool]]:
    """Messages as SQS makes them: a receipt handle is random, so no two messages share one."""
    pool = iter(draw(st.permutations(HANDLES)))
    spec = []
    for never_received, old, pending in draw(st.lists(st.tuples(st.booleans(), st.integers(0, 1), st.booleans()),
                                                      max_size=5)):  # fmt: skip
        current = None if never_received else next(pool)
        spec.append((current, [next(pool) for _ in range(old)], pending))
    return spec


@settings(max_examples=400, deadline=None)
@given(unique_handles(), st.sets(st.sampled_from(HANDLES), max_size=3),
       st.lists(st.lists(st.sampled_from(HANDLES), min_size=1, max_size=10), max_size=3))  # fmt: skip
def test_deletes_a_batch_as_moto_does(spec: list[tuple[str | None, list[str], bool]], deleted: set[str],
                                      batches: list[list[str]]) -> None:  # fmt: skip
    theirs, ours = _queue(spec, deleted), _queue(spec, deleted)
    for handles in batches:
        assert _batch(_delete_message_batch, ours, handles) == _batch(_moto_delete_message_batch, theirs, handles)
        assert _state(ours) == _state(theirs)


def test_a_batch_answers_each_handle_in_its_order() -> None:
    # GIVEN m0 received as h1 (earlier as h0), m1 as h2, m2 as h3, and h5 deleted before
    queue = _queue([("h1", ["h0"], True), ("h2", [], True), ("h3", [], False)], {"h5"})
    # WHEN a batch names m0 twice, an unknown handle, a deleted one and m1
    success, errors = _batch(_delete_message_batch, queue, ["h0", "h9", "h1", "h5", "h2"])
    # THEN every known handle succeeds, the unknown one is refused, and only m2 is left
    assert success == ["e0", "e2", "e3", "e4"]
    assert errors == [{"Id": "e1", "SenderFault": True, "Code": "ReceiptHandleIsInvalid",
                       "Message": 'The input receipt handle "h9" is not a valid receipt handle.'}]  # fmt: skip
    assert _state(queue) == (["m2"], [], ["h0", "h1", "h2", "h5"])


class _Walked(list[Message]):
    """A queue's messages that count how far they were walked."""

    walked = 0

    def __iter__(self) -> Any:
        for message in list.__iter__(self):
            self.walked += 1
            yield message


def test_a_batch_walks_the_queue_only_up_to_the_last_message_it_names() -> None:
    # GIVEN a queue of 1,000 messages, the first three received (in flight)
    queue = _queue([(f"r{i}" if i < 3 else None, [], i < 3) for i in range(1000)], set())
    walked = queue._messages = _Walked(queue._messages)
    # WHEN a batch deletes the second and the first
    success, errors = _batch(_delete_message_batch, queue, ["r1", "r0"])
    # THEN they are gone, and the queue was read up to the second only
    assert success == ["e0", "e1"] and errors == []
    assert walked.walked == 2
    assert [m.id for m in queue._messages[:3]] == ["m2", "m3", "m4"] and len(queue._messages) == 998


def test_a_receive_reads_the_queue_only_up_to_the_messages_it_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the embedded AWS's queue patches (undone after the test) and a queue of 1,000 messages
    from nexus.local import aws_server

    for name, value in aws_server.QUEUE_SPEEDUPS.items():
        monkeypatch.setattr(Queue, name, value)
    backend = SQSBackend("us-east-1", "123456789012")
    backend.create_queue("q")
    queue = backend.get_queue("q")
    for index in range(1000):
        backend.send_message("q", f"body {index}")
    walked = queue._messages = _Walked(queue._messages)
    # WHEN 10 are received, then 10 more
    first = backend.receive_message("q", 10, 0, 30)
    second = backend.receive_message("q", 10, 0, 30)
    # THEN each took the oldest visible ones, reading past the ones in flight and no further
    assert [m.body for m in first] == [f"body {i}" for i in range(10)]
    assert [m.body for m in second] == [f"body {i}" for i in range(10, 20)]
    assert walked.walked == 10 + 20
    # AND the queue still counts every visible message
    assert queue.attributes["ApproximateNumberOfMessages"] == 980
