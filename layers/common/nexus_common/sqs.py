"""The SQS batch sender shared by the services: ``SendMessageBatch``, 10 messages a call."""

from __future__ import annotations

from typing import Any, Final

from nexus_common import aws
from nexus_common.jsonutil import dumps

BATCH_SIZE: Final = 10  # the most SendMessageBatch takes


class SendFailed(RuntimeError):
    """SQS refused some messages of a batch: ``failed`` holds (entry id, error code) of each,
    the entry id being the message's index in the list given to ``send``."""

    def __init__(self, failed: list[tuple[str, str]]) -> None:
        self.failed = failed
        codes = ", ".join(f"{entry}: {code}" for entry, code in failed)
        super().__init__(f"{len(failed)} message(s) not sent ({codes})")


class SqsBatchSender:
    """Sends JSON messages to one queue with ``SendMessageBatch`` (10 per call), in order.

    A batch SQS partly refuses raises ``SendFailed`` naming the refused messages, and the batches
    after it are not sent: the caller fails (its trigger redelivers), and a message sent twice is
    harmless because every consumer is idempotent."""

    def __init__(self, queue_url: str, client: Any = None) -> None:
        self.queue_url = queue_url
        self._client = client

    def send(self, messages: list[dict[str, Any]]) -> None:
        client = self._client or aws.client("sqs")
        for start in range(0, len(messages), BATCH_SIZE):
            chunk = messages[start : start + BATCH_SIZE]
            response = client.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(start + i), "MessageBody": dumps(m)} for i, m in enumerate(chunk)],
            )
            failed = response.get("Failed") or []
            if failed:
                raise SendFailed([(str(f.get("Id")), str(f.get("Code"))) for f in failed])
