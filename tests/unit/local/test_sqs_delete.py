"""The embedded AWS deletes an SQS message as moto does (``_queue_delete_message``), in one pass:
the same messages left, in order, the same in flight and deleted, and the same refusal of an
unknown receipt handle, whatever the queue holds and the handles asked for."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue

from nexus.local.aws_server import _moto_queue_delete_message, _queue_delete_message

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
