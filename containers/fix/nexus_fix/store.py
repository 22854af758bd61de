"""The session message store: next sender/target sequence numbers and the application messages
sent, by sequence number, so that a ResendRequest can be answered after a gateway restart.

Two implementations of ``MessageStore``:

* ``MemoryStore``: a process's memory (unit tests, and a store shared by acceptors of one process);
* ``DynamoStore``: a DynamoDB table, so sequence numbers and sent messages survive a restart.

DynamoDB key schema (declared in ``stacks/fix.yaml``, on-demand billing)::

    partition key  session_id  S   "FIX.4.4:NEXUS->CLIENT1"
    sort key       seq         N   0 = the session's state item, n >= 1 = sent message n

    state item (seq 0):  next_sender N (written with each session message, at each
                         disconnection and with each message stored while disconnected; on load
                         the last application message's seq + 1 when higher), next_target N,
                         epoch N, updated_at S (UTC ISO)
    message item:        frame B (the wire bytes as first sent), epoch N, expires_at N
                         (epoch seconds; enable TTL on ``expires_at`` to age messages out)

A reset (ResetOnLogon/Logout/Disconnect, Logon 141=Y, SequenceReset-Reset is not a reset of ours)
writes the state item back to 1/1 and increments ``epoch``; a message item of an older epoch is
never resent (no scan-and-delete on reset). The gateway's role needs GetItem, PutItem,
BatchWriteItem, UpdateItem and Query on the table, nothing else. A sent application message is one
PutItem, or a share of one BatchWriteItem when the session stores several at once (up to 25, see
``Session.send``); an inbound message one UpdateItem (next_target); a session message we send one
UpdateItem (next_sender).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from nexus_common.dynamo_batch import batch_put


class MessageStore(Protocol):
    async def get_seq_nums(self, session_id: str) -> tuple[int, int]:
        """(next sender seq num, next target seq num); (1, 1) for a session never seen."""
        ...

    async def set_next_sender(self, session_id: str, seq: int) -> None: ...

    async def set_next_target(self, session_id: str, seq: int) -> None: ...

    async def save_sent(self, session_id: str, seq: int, frame: bytes) -> None:
        """Keep application message ``seq`` and set the next sender seq num to ``seq + 1``."""
        ...

    async def save_sent_many(self, session_id: str, messages: Sequence[tuple[int, bytes]]) -> None:
        """``save_sent`` of consecutive messages ``(seq, frame)``, in one request where the store
        can (at most 25)."""
        ...

    async def get_sent(self, session_id: str, begin: int, end: int) -> list[tuple[int, bytes]]:
        """The stored messages with ``begin <= seq <= end``, in order."""
        ...

    async def reset(self, session_id: str) -> None:
        """Both sequence numbers back to 1, the stored messages forgotten."""
        ...


@dataclass
class _State:
    next_sender: int = 1
    next_target: int = 1
    messages: dict[int, bytes] = field(default_factory=dict)


class MemoryStore:
    """``MessageStore`` in memory."""

    def __init__(self) -> None:
        self._sessions: dict[str, _State] = {}

    def _state(self, session_id: str) -> _State:
        return self._sessions.setdefault(session_id, _State())

    async def get_seq_nums(self, session_id: str) -> tuple[int, int]:
        state = self._state(session_id)
        return state.next_sender, state.next_target

    async def set_next_sender(self, session_id: str, seq: int) -> None:
        self._state(session_id).next_sender = seq

    async def set_next_target(self, session_id: str, seq: int) -> None:
        self._state(session_id).next_target = seq

    async def save_sent(self, session_id: str, seq: int, frame: bytes) -> None:
        state = self._state(session_id)
        state.messages[seq] = frame
        state.next_sender = seq + 1

    async def save_sent_many(self, session_id: str, messages: Sequence[tuple[int, bytes]]) -> None:
        for seq, frame in messages:
            await self.save_sent(session_id, seq, frame)

    async def get_sent(self, session_id: str, begin: int, end: int) -> list[tuple[int, bytes]]:
        messages = self._state(session_id).messages
        return [(seq, messages[seq]) for seq in sorted(messages) if begin <= seq <= end]

    async def reset(self, session_id: str) -> None:
        self._sessions[session_id] = _State()


STATE_SEQ = 0


class DynamoStore:
    """``MessageStore`` on a DynamoDB table (key schema in the module docstring). The boto3
    calls run in a worker thread so that a slow request never stalls the other sessions."""

    def __init__(
        self,
        table: Any,
        *,
        retention: timedelta = timedelta(days=7),
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._table = table  # a boto3 Table resource
        self._retention = retention
        self._clock = clock
        self._epochs: dict[str, int] = {}

    async def _run(self, fn: Callable[[], Any]) -> Any:
        return await asyncio.to_thread(fn)

    def _load(self, session_id: str) -> dict[str, Any]:
        item = self._table.get_item(Key={"session_id": session_id, "seq": STATE_SEQ}, ConsistentRead=True).get("Item")
        state = item or {"next_sender": 1, "next_target": 1, "epoch": 0}
        self._epochs[session_id] = int(state.get("epoch", 0))
        return state

    def _last_sent(self, session_id: str, epoch: int) -> int:
        """The highest message seq of this epoch (0 if none): newest first, older epochs'
        items skipped (they remain above the current numbers only after a reset)."""
        from boto3.dynamodb.conditions import Key

        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("session_id").eq(session_id) & Key("seq").gt(STATE_SEQ),
            "ScanIndexForward": False,
            "ProjectionExpression": "seq, epoch",
            "ConsistentRead": True,
            "Limit": 100,
        }
        while True:
            page = self._table.query(**kwargs)
            for item in page.get("Items", []):
                if int(item.get("epoch", 0)) == epoch:
                    return int(item["seq"])
            if "LastEvaluatedKey" not in page:
                return 0
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def _numbers(self, session_id: str) -> tuple[int, int]:
        state = self._load(session_id)
        next_sender = max(int(state.get("next_sender", 1)), self._last_sent(session_id, self._epochs[session_id]) + 1)
        return next_sender, int(state.get("next_target", 1))

    async def get_seq_nums(self, session_id: str) -> tuple[int, int]:
        numbers: tuple[int, int] = await self._run(lambda: self._numbers(session_id))
        return numbers

    def _set(self, session_id: str, name: str, seq: int) -> None:
        self._table.update_item(
            Key={"session_id": session_id, "seq": STATE_SEQ},
            UpdateExpression="SET #n = :v, updated_at = :t",
            ExpressionAttributeNames={"#n": name},
            ExpressionAttributeValues={":v": seq, ":t": self._clock().isoformat()},
        )

    async def set_next_sender(self, session_id: str, seq: int) -> None:
        await self._run(lambda: self._set(session_id, "next_sender", seq))

    async def set_next_target(self, session_id: str, seq: int) -> None:
        await self._run(lambda: self._set(session_id, "next_target", seq))

    def _epoch(self, session_id: str) -> int:
        if session_id not in self._epochs:
            self._load(session_id)
        return self._epochs[session_id]

    def _items(self, session_id: str, messages: Sequence[tuple[int, bytes]]) -> list[dict[str, Any]]:
        """The message items of ``messages`` (``(seq, frame)``), in this epoch, kept for the retention."""
        expires = int((self._clock() + self._retention).timestamp())
        epoch = self._epoch(session_id)
        return [{"session_id": session_id, "seq": seq, "frame": frame, "epoch": epoch, "expires_at": expires}
                for seq, frame in messages]  # fmt: skip

    def _save(self, session_id: str, seq: int, frame: bytes) -> None:
        # one write: the next sender number is read back as the last message's seq + 1
        self._table.put_item(Item=self._items(session_id, [(seq, frame)])[0])

    async def save_sent(self, session_id: str, seq: int, frame: bytes) -> None:
        await self._run(lambda: self._save(session_id, seq, frame))

    def _save_many(self, session_id: str, messages: Sequence[tuple[int, bytes]]) -> None:
        if len(messages) == 1:
            self._save(session_id, *messages[0])
        else:  # 25 items a request; what is unprocessed is sent again
            batch_put(self._table, self._items(session_id, messages), ("session_id", "seq"))

    async def save_sent_many(self, session_id: str, messages: Sequence[tuple[int, bytes]]) -> None:
        await self._run(lambda: self._save_many(session_id, messages))

    def _query(self, session_id: str, begin: int, end: int) -> list[tuple[int, bytes]]:
        from boto3.dynamodb.conditions import Key

        epoch = self._epoch(session_id)
        out: list[tuple[int, bytes]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("session_id").eq(session_id) & Key("seq").between(max(begin, 1), end),
            "ConsistentRead": True,
        }
        while True:
            page = self._table.query(**kwargs)
            for item in page.get("Items", []):
                if int(item.get("epoch", 0)) == epoch:
                    frame = item["frame"]
                    out.append((int(item["seq"]), bytes(frame.value if hasattr(frame, "value") else frame)))
            if "LastEvaluatedKey" not in page:
                return out
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def get_sent(self, session_id: str, begin: int, end: int) -> list[tuple[int, bytes]]:
        if end < begin:
            return []
        result: list[tuple[int, bytes]] = await self._run(lambda: self._query(session_id, begin, end))
        return result

    def _reset(self, session_id: str) -> None:
        epoch = self._epoch(session_id) + 1
        self._table.put_item(
            Item={"session_id": session_id, "seq": STATE_SEQ, "next_sender": 1, "next_target": 1, "epoch": epoch,
                  "updated_at": self._clock().isoformat()}
        )
        self._epochs[session_id] = epoch

    async def reset(self, session_id: str) -> None:
        await self._run(lambda: self._reset(session_id))
