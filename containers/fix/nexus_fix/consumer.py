"""The gateway's own consumer of the execution-events stream.

A Lambda cannot write to a TCP session that the gateway task holds, so the task reads the stream
itself, as the matching engine reads order-commands: one reader per shard (``GetRecords``), each
batch handed to the ``ReportRouter`` and then checkpointed in ``FixOrdersTable``
(``k#<stream>#<shard>``), at most once per ``checkpoint_seconds`` per shard (and once more when the
gateway stops): the checkpoint is only where a restarted reader resumes, so a later one costs a
restart a few seconds of events read again, not a write per batch. A batch that fails is read again
from the last position handled after a pause: the router is idempotent (an event applied once, its
reports sent once), so a redelivery is harmless. A shard never read starts at its oldest record
(TRIM_HORIZON): events of orders not entered over FIX are skipped by one batched read, and no
report of a FIX order is missed while the gateway was down. New shards (a reshard) are picked up on
the next listing; a closed shard's reader ends at its last record.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from nexus_fix.fixorders import FixOrderStore
from nexus_fix.reports import ReportRouter, parse_records

log = logging.getLogger("nexus_fix.consumer")


class ExecutionEventsConsumer:
    def __init__(
        self,
        kinesis: Any,
        stream: str,
        store: FixOrderStore,
        router: ReportRouter,
        *,
        poll_seconds: float = 0.2,
        list_seconds: float = 10.0,
        batch: int = 1000,
        checkpoint_seconds: float = 1.0,
        run: Callable[..., Any] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.kinesis = kinesis
        self.stream = stream
        self.store = store
        self.router = router
        self.poll_seconds = poll_seconds
        self.list_seconds = list_seconds
        self.batch = batch
        self.checkpoint_seconds = checkpoint_seconds
        self.run = run or asyncio.to_thread
        self.clock = clock
        self._handled: dict[str, str] = {}  # shard -> the last sequence number handled
        self._saved: dict[str, tuple[str, float]] = {}  # shard -> (the checkpoint written, when)
        self._readers: dict[str, asyncio.Task[None]] = {}
        self._main: asyncio.Task[None] | None = None
        self.started = asyncio.Event()

    async def start(self) -> None:
        self._main = asyncio.create_task(self._supervise(), name="execution-events")
        await asyncio.wait_for(self.started.wait(), 30)

    async def stop(self) -> None:
        tasks = [t for t in (self._main, *self._readers.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for shard_id in list(self._handled):  # what was handled since the last checkpoint
            try:
                await self._checkpoint(shard_id, force=True)
            except Exception:  # a restart reads those events again: harmless
                log.exception("execution-events shard %s: last checkpoint not written", shard_id)

    async def _checkpoint(self, shard_id: str, force: bool = False) -> None:
        """Write the shard's last handled position, unless one was written ``checkpoint_seconds``
        ago or less (``force``: whenever it moved)."""
        handled = self._handled.get(shard_id)
        saved, at = self._saved.get(shard_id, (None, float("-inf")))
        if handled is None or handled == saved or (not force and self.clock() - at < self.checkpoint_seconds):
            return
        await self.run(self.store.set_checkpoint, self.stream, shard_id, handled)
        self._saved[shard_id] = (handled, self.clock())

    async def _supervise(self) -> None:
        while True:
            try:
                shards = await self.run(self._shard_ids)
                for shard_id in shards:
                    if shard_id not in self._readers:
                        self._readers[shard_id] = asyncio.create_task(self._read(shard_id), name=f"shard-{shard_id}")
                self.started.set()
            except asyncio.CancelledError:
                raise
            except Exception:  # poller boundary: logged, listed again
                log.exception("execution-events shards not listed; retrying")
            await asyncio.sleep(self.list_seconds)

    def _shard_ids(self) -> list[str]:
        shards: list[str] = []
        kwargs: dict[str, Any] = {"StreamName": self.stream}
        while True:
            page = self.kinesis.list_shards(**kwargs)
            shards += [shard["ShardId"] for shard in page.get("Shards", [])]
            token = page.get("NextToken")
            if not token:
                return shards
            kwargs = {"NextToken": token}

    def _iterator(self, shard_id: str) -> str:
        after = self._handled.get(shard_id) or self.store.checkpoint(self.stream, shard_id)
        if after is None:
            answer = self.kinesis.get_shard_iterator(
                StreamName=self.stream, ShardId=shard_id, ShardIteratorType="TRIM_HORIZON"
            )
        else:
            answer = self.kinesis.get_shard_iterator(
                StreamName=self.stream,
                ShardId=shard_id,
                ShardIteratorType="AFTER_SEQUENCE_NUMBER",
                StartingSequenceNumber=after,
            )
        return str(answer["ShardIterator"])

    async def _read(self, shard_id: str) -> None:
        iterator: str | None = None
        while True:
            try:
                if iterator is None:
                    iterator = await self.run(self._iterator, shard_id)
                page = await self.run(lambda it=iterator: self.kinesis.get_records(ShardIterator=it, Limit=self.batch))
                records = page.get("Records", [])
                if records:
                    events = parse_records(record["Data"] for record in records)
                    await self.router.handle(events)
                    self._handled[shard_id] = records[-1]["SequenceNumber"]
                await self._checkpoint(shard_id)
                iterator = page.get("NextShardIterator")
                if iterator is None:
                    log.info("shard %s closed: its reader ends", shard_id)
                    return
                if not records:
                    await asyncio.sleep(self.poll_seconds)
            except asyncio.CancelledError:
                raise
            except Exception:  # poller boundary: logged, read again
                log.exception("execution-events shard %s: batch not handled; reading again from the last one handled",
                              shard_id)  # fmt: skip
                iterator = None
                await asyncio.sleep(1.0)
