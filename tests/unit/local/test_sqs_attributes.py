"""The embedded AWS reads an SQS queue's attributes as moto does (``_QueueAttributes``): the same
names, in the same order, with the same values, for every kind of queue; and reading one does not
compute the others (sending a message reads one, and counting a backed-up queue's messages for
the rest made every send dearer as the queue grew)."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from moto.sqs.models import Message, Queue, SQSBackend, sqs_backends

from nexus.local.aws_server import _moto_queue_attributes, _QueueAttributes

ARN = "arn:aws:sqs:us-east-1:123456789012:dead"  # a standard queue's dead-letter queue, ".fifo" added for a FIFO's
_names = itertools.count()
queues = st.fixed_dictionaries(
    {},
    optional={
        "DelaySeconds": st.sampled_from(["0", "5"]),
        "VisibilityTimeout": st.sampled_from(["30", "600"]),
        "MessageRetentionPeriod": st.sampled_from(["60", "345600"]),
        "RedrivePolicy": st.just("redrive"),
        "Policy": st.just('{"Version": "2012-10-17", "Statement": []}'),
        "KmsMasterKeyId": st.just("alias/aws/sqs"),
        "SqsManagedSseEnabled": st.sampled_from(["true", "false"]),
    },
)


def _queue(fifo: bool, attributes: dict[str, str], visible: int, hidden: int, delayed: int) -> Queue:
    backend = sqs_backends["123456789012"]["us-east-1"]  # where moto looks a dead-letter queue up
    suffix = ".fifo" if fifo else ""
    backend.create_queue(f"dead{suffix}", **({"FifoQueue": "true"} if fifo else {}))
    if "RedrivePolicy" in attributes:
        attributes = {**attributes, "RedrivePolicy": json.dumps({"deadLetterTargetArn": ARN + suffix,
                                                                  "maxReceiveCount": 3})}  # fmt: skip
    extra = {"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}
    name = f"q{next(_names)}{suffix}"
    queue = backend.create_queue(name, **attributes, **extra)
    for index in range(visible + hidden + delayed):
        message = Message(f"m{index}", "body")
        message.mark_sent(delay_seconds=600 if index >= visible + hidden else 0)
        if visible <= index < visible + hidden:
            message.change_visibility(600)
        queue._messages.append(message)
    return queue


def _as_dict(attributes: Any) -> list[tuple[str, Any]]:
    return list(attributes.items())


@settings(max_examples=150, deadline=None)
@given(st.booleans(), queues, st.integers(0, 3), st.integers(0, 3), st.integers(0, 3))
def test_the_attributes_are_motos(fifo: bool, attributes: dict[str, str], visible: int, hidden: int,
                                  delayed: int) -> None:  # fmt: skip
    queue = _queue(fifo, attributes, visible, hidden, delayed)
    theirs = _moto_queue_attributes.fget(queue)  # type: ignore[attr-defined]
    ours = _QueueAttributes(queue)
    assert _as_dict(ours) == _as_dict(theirs)
    assert len(ours) == len(theirs) and list(ours) == list(theirs)
    for name in [*Queue.BASE_ATTRIBUTES, *Queue.FIFO_ATTRIBUTES, *Queue.KMS_ATTRIBUTES, "Nope"]:
        assert ours.get(name) == theirs.get(name)
        assert (name in ours) == (name in theirs)
    assert dict(ours)["ApproximateNumberOfMessages"] == visible
    assert dict(ours)["ApproximateNumberOfMessagesNotVisible"] == hidden
    assert dict(ours)["ApproximateNumberOfMessagesDelayed"] == delayed


class _Uncountable(list[Message]):
    def __iter__(self) -> Any:
        raise AssertionError("the queue's messages were walked")


@pytest.mark.parametrize("fifo", [False, True])
def test_sending_reads_one_attribute_without_walking_the_queue(fifo: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN the embedded AWS's SQS (its queue patches, undone after the test: other tests of this
    # process compare the embedded AWS with moto's own), and a queue whose messages may not be walked
    from nexus.local import aws_server

    for name, value in aws_server.QUEUE_SPEEDUPS.items():
        monkeypatch.setattr(Queue, name, value)
    backend = SQSBackend("us-east-1", "123456789012")
    name = "q.fifo" if fifo else "q"
    backend.create_queue(name, **({"FifoQueue": "true", "ContentBasedDeduplication": "true"} if fifo else {}))
    queue = backend.get_queue(name)
    # WHEN a standard queue is sent a message
    if not fifo:
        queue._messages = _Uncountable()
        backend.send_message(name, "hello")
        # THEN the message is added without counting the others
        assert list.__len__(queue._messages) == 1
        with pytest.raises(AssertionError):  # the guard bites: counting would have failed the send
            _ = queue.attributes["ApproximateNumberOfMessages"]
    else:  # a FIFO queue deduplicates by walking its messages, as moto does; its attribute is read lazily
        queue._messages = []
        backend.send_message(name, "hello", group_id="g")
        backend.send_message(name, "hello", group_id="g")  # the same content: deduplicated
        assert queue.attributes["ContentBasedDeduplication"] == "true"
        assert len(queue._messages) == 1
