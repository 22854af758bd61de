"""The matching engine process: ``order-commands`` in, ``execution-events`` out.

Lifecycle: ``start`` (read the instruments), ``run``: as a standby, wait for the leader lease
(``nexus_matching.lease``); as the leader, restore the Redis snapshot, open every shard at the
position after it, then poll, apply, publish and snapshot, renewing the lease; ``stop`` (finish
the batch in hand, publish, snapshot, hand the lease over, exit).

Guarantees:

* Commands are applied in shard order. The command stream is the journal: a snapshot records
  the last applied sequence number of every shard, and recovery replays from the next one.
* Events are published before the snapshot that covers their commands is written, so a crash
  loses nothing: the replay re-emits the same events (same ids, same ``seq``) and consumers drop
  what they already applied.
* A symbol's events of one step travel in one Kinesis record (``{"events": [...]}``), and a
  symbol never has two records in flight: a ``PutRecords`` partial failure is retried before
  anything newer of that symbol is sent, so per-symbol order holds.
* One leader at a time: events carry the leader's epoch, snapshots are written only while the
  lease is held, and a leader that finds its lease gone stops at once and becomes a standby.

Faults (Redis or Kinesis unreachable, throttled, restarted): the process never dies of one.
Each turn of the loop that fails is retried after a pause that doubles up to
``engine_retry_max_seconds``. The heartbeat thread survives its errors too. A leader publishes
only while its lease is *fresh*: renewed (or taken) less than ``LEASE_SAFETY`` of the TTL ago,
counted from before the renewal was sent; a leader that cannot renew (Redis down) steps down
once that passes, before the lease can expire in Redis and a standby take it. A step reads every
shard before it applies anything, so a failed read changes nothing (the same records are read
again); once applied, its events stay in hand until published (retried), and no snapshot is
written while any are in hand. A leader that steps down drops its books; whoever leads next
restores the last snapshot and replays the journal after it, re-emitting the same events.

Health: the leader writes ``{prefix}:status`` beside the lease on each heartbeat: its node and
epoch, the instant (UTC), and how far behind the stream tip its last read was
(``MillisBehindLatest``, the largest over the shards), and whether it holds events it could not
publish (events in hand for longer than ``PUBLISH_GRACE_S``; a publish under way is not that),
which ``GET /health`` reads.

Garbage collection (``settle_heap``): after a restore and after each snapshot, everything alive
is collected once and then frozen (``gc.freeze``), so the automatic collections in between scan
only the objects made since, never the whole book.
"""

from __future__ import annotations

import gc
import json
import logging
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Mapping
from decimal import Decimal
from types import FrameType
from typing import Any

import redis
from botocore.exceptions import BotoCoreError, ClientError
from nexus_common import aws
from nexus_common.events import iso, utc_now
from nexus_common.instrument_store import DynamoInstruments
from nexus_common.instruments import Instrument
from nexus_common.settings import NexusSettings, load_settings
from pydantic import Field

from nexus_matching.engine import MatchingEngine
from nexus_matching.lease import Lease

log = logging.getLogger("nexus.matching")

MAX_RECORD_BYTES = 1_000_000 - 1_024  # Kinesis: 1 MiB per record including the partition key
MAX_CALL_RECORDS = 500
MAX_CALL_BYTES = 5_000_000
LEASE_SAFETY = 0.75  # a leader publishes only within this fraction of the TTL after its last renewal
PUBLISH_GRACE_S = 2.0  # events held longer than this (a publish failing and retried) show in the status record
# What a turn of the loop may fail with and survive: Redis, AWS (Kinesis, DynamoDB), the network.
TRANSIENT = (redis.RedisError, BotoCoreError, ClientError, OSError)


class EngineSettings(NexusSettings):
    order_commands_stream: str
    execution_events_stream: str
    instruments_table: str
    redis_url: str
    engine_snapshot_every: int = Field(gt=0)
    engine_snapshot_seconds: float = Field(gt=0)
    engine_lease_ms: int = Field(default=3000, ge=500)  # a dead leader is replaced within about this
    engine_poll_seconds: float = Field(default=0.01, gt=0)  # first wait on idle shards
    engine_poll_max_seconds: float = Field(default=0.1, gt=0)  # idle waits double up to this
    engine_retry_max_seconds: float = Field(default=2.0, gt=0)  # waits after errors double up to this


def load_instruments(table_name: str) -> dict[str, Instrument]:
    return {instrument.symbol: instrument for instrument in DynamoInstruments(table_name).list_all()}


class EventPublisher:
    """Publishes each symbol's events in order, one record per symbol per call."""

    def __init__(self, stream: str) -> None:
        self.stream = stream
        self.kinesis = aws.client("kinesis")

    @staticmethod
    def _records(symbol: str, events: list[dict[str, Any]]) -> list[bytes]:
        """The symbol's events as one or more records, each under the record size limit."""
        records: list[bytes] = []
        chunk: list[str] = []
        size = 16
        for event in events:
            text = json.dumps(event, separators=(",", ":"))
            if chunk and size + len(text) + 1 > MAX_RECORD_BYTES:
                records.append(('{"events":[' + ",".join(chunk) + "]}").encode())
                chunk, size = [], 16
            chunk.append(text)
            size += len(text) + 1
        if chunk:
            records.append(('{"events":[' + ",".join(chunk) + "]}").encode())
        return records

    def publish(self, by_symbol: Mapping[str, list[dict[str, Any]]], stop: threading.Event) -> None:
        queues = {symbol: self._records(symbol, events) for symbol, events in by_symbol.items() if events}
        attempt = 0
        while queues:
            # At most one record per symbol in a call: its next record waits for this one.
            batch: list[tuple[str, bytes]] = []
            size = 0
            for symbol, records in queues.items():
                if len(batch) >= MAX_CALL_RECORDS or size + len(records[0]) > MAX_CALL_BYTES:
                    break
                batch.append((symbol, records[0]))
                size += len(records[0])
            answer = self.kinesis.put_records(
                StreamName=self.stream,
                Records=[{"Data": data, "PartitionKey": symbol} for symbol, data in batch],
            )
            failed = 0
            for (symbol, _), result in zip(batch, answer["Records"], strict=True):
                if "ErrorCode" in result:
                    failed += 1
                    continue
                queues[symbol].pop(0)
                if not queues[symbol]:
                    del queues[symbol]
            if failed:
                attempt += 1
                log.warning("put_records: %d of %d records throttled, retrying", failed, len(batch))
                stop.wait(min(0.05 * 2**attempt, 2.0))
            else:
                attempt = 0


class EngineProcess:
    def __init__(self, settings: EngineSettings) -> None:
        self.settings = settings
        self.stop_event = threading.Event()
        # Timeouts: a Redis that hangs (paused, partitioned) fails the call instead of the loop.
        timeout = max(0.5, settings.engine_lease_ms / 3000)
        self.redis = redis.Redis.from_url(settings.redis_url, socket_timeout=timeout, socket_connect_timeout=timeout)
        self.kinesis = aws.client("kinesis")
        self.publisher = EventPublisher(settings.execution_events_stream)
        prefix = f"nexus:engine:{settings.order_commands_stream}"
        self.snapshot_key = f"{prefix}:snapshot"
        self.status_key = f"{prefix}:status"
        self.lease = Lease(self.redis, prefix, settings.engine_lease_ms)
        self.instruments: dict[str, Instrument] = {}
        self.engine: MatchingEngine | None = None
        self.positions: dict[str, str] = {}
        self.iterators: dict[str, str | None] = {}
        self.applied_since_snapshot = 0
        self.last_snapshot = time.monotonic()
        self.lost_epoch = 0  # set by the heartbeat when renewing this epoch's lease failed
        self.commands_applied = 0
        self.instruments_read_at = 0.0
        self.renewed_at = 0.0  # monotonic instant the last successful renewal (or acquisition) was sent
        self.unpublished: dict[str, list[dict[str, Any]]] = {}  # events applied but not yet published
        self.held_since = 0.0  # monotonic instant the events in hand were first held
        self.behind_ms = 0  # MillisBehindLatest of the last read, the largest over the shards
        self.errors = 0  # turns of the loop that failed in a row
        self.idle = settings.engine_poll_seconds  # the next wait on idle shards

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.instruments = load_instruments(self.settings.instruments_table)
        log.info("engine %s started: %d instruments; standing by for the lease", self.lease.node,
                 len(self.instruments))  # fmt: skip

    def stop(self) -> None:
        self.stop_event.set()

    @property
    def is_leader(self) -> bool:
        return self.engine is not None

    def become_leader(self) -> None:
        """Restore the last snapshot and open every shard just after it."""
        # Everything is read before anything is set: a failure half-way leaves a standby that
        # still holds the lease, and the next turn tries again.
        instruments = load_instruments(self.settings.instruments_table)
        raw = self.redis.get(self.snapshot_key)
        engine: MatchingEngine | None = None
        positions: dict[str, str] = {}
        if raw:
            state = json.loads(raw)
            try:
                engine = MatchingEngine.restore(state["engine"], instruments)
                positions = dict(state["positions"])
            except (ValueError, KeyError) as exc:
                # e.g. a snapshot written by an older engine version: the journal alone rebuilds
                # the same books, as long as the stream still holds it all (7 days' retention)
                log.warning("snapshot not usable (%s): replaying the whole journal", exc)
                engine, positions = None, {}
        if engine is None:
            engine = MatchingEngine(instruments)
        engine.set_epoch(self.lease.epoch)
        iterators = self._open_iterators(positions)
        self.instruments, self.positions, self.iterators = instruments, positions, iterators
        self.engine = engine
        self.unpublished = {}
        self.behind_ms = 0
        try:
            self._write_status(self.lease.epoch)  # /health sees the new leader at once
        except redis.RedisError as exc:  # the heartbeat writes it again within a third of the TTL
            log.warning("engine %s: status not written (%s)", self.lease.node, exc)
        shards = list(iterators)
        self.applied_since_snapshot = 0
        self.last_snapshot = time.monotonic()
        settle_heap()
        log.info("engine %s is the leader, epoch %d; replaying %d shard(s) from %s", self.lease.node,
                 self.lease.epoch, len(shards), self.positions or "the start")  # fmt: skip

    def _open_iterators(self, positions: Mapping[str, str]) -> dict[str, str | None]:
        """An iterator per shard of order-commands, just after ``positions`` (else at the start)."""
        iterators: dict[str, str | None] = {}
        shards = self.kinesis.list_shards(StreamName=self.settings.order_commands_stream)["Shards"]
        for shard in shards:
            shard_id = shard["ShardId"]
            args: dict[str, Any] = {"StreamName": self.settings.order_commands_stream, "ShardId": shard_id}
            if shard_id in positions:
                args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=positions[shard_id])
            else:
                args["ShardIteratorType"] = "TRIM_HORIZON"
            iterators[shard_id] = self.kinesis.get_shard_iterator(**args)["ShardIterator"]
        return iterators

    def step_down(self, why: str) -> None:
        log.warning("engine %s is no longer the leader (epoch %d): %s", self.lease.node, self.lease.epoch, why)
        self.engine = None
        self.unpublished = {}
        self.lease.epoch = 0

    def lease_fresh(self) -> bool:
        """Renewed (or taken) recently enough that Redis cannot have given it to anyone else."""
        return time.monotonic() - self.renewed_at < self.settings.engine_lease_ms / 1000 * LEASE_SAFETY

    def _heartbeat(self) -> None:
        """Renew the lease every third of its TTL, beside the main loop, so a leader that is
        alive but slow (a long step, a slow PutRecords) keeps it. A paused or dead process stops
        renewing, and its lease expires. A renewal refused (the lease is someone else's) is noted
        for the main loop; a renewal that fails (Redis unreachable) is tried again sooner, and the
        main loop steps down once the lease is no longer fresh. Nothing ends this thread but stop."""
        interval = self.settings.engine_lease_ms / 3000
        wait = interval
        while not self.stop_event.wait(wait):
            wait = interval
            epoch = self.lease.epoch
            if not epoch:
                continue
            sent = time.monotonic()
            try:
                if self.lease.renew_epoch(epoch):
                    if self.lease.epoch == epoch:
                        self.renewed_at = sent
                        self._write_status(epoch)
                else:
                    self.lost_epoch = epoch
            except Exception as exc:  # noqa: BLE001 - the heartbeat thread must outlive any error
                wait = interval / 3
                log.warning("engine %s: lease renewal failed (%s); retrying", self.lease.node, exc)

    def _write_status(self, epoch: int) -> None:
        """The leader's health record beside its lease (see the module doc); expires with it."""
        # events in hand are normal while a publish is under way; held past the grace, publishing fails
        stuck = bool(self.unpublished) and time.monotonic() - self.held_since > PUBLISH_GRACE_S
        status = {"node": self.lease.node, "epoch": epoch, "at": iso(utc_now()), "behind_ms": self.behind_ms,
                  "unpublished": stuck}  # fmt: skip
        self.redis.set(self.status_key, json.dumps(status, separators=(",", ":")), px=self.settings.engine_lease_ms)

    def run(self) -> None:
        self.idle = self.settings.engine_poll_seconds
        heartbeat = threading.Thread(target=self._heartbeat, name="lease-heartbeat", daemon=True)
        heartbeat.start()
        while not self.stop_event.is_set():
            try:
                self.turn()
                self.errors = 0
            except TRANSIENT as exc:
                self.errors += 1
                pause = min(self.settings.engine_poll_seconds * 2 ** min(self.errors, 20),
                            self.settings.engine_retry_max_seconds)  # fmt: skip
                log.warning("engine %s: %s: %s; retrying in %.2f s (failure %d in a row)", self.lease.node,
                            type(exc).__name__, exc, pause, self.errors)  # fmt: skip
                if self.is_leader and not self.lease_fresh():
                    self.step_down("the lease could not be renewed in time")
                self.stop_event.wait(pause)
        if self.is_leader:
            try:
                self.maybe_snapshot(force=True)
                self.lease.release()
            except TRANSIENT as exc:  # the successor restores the last snapshot and replays after it
                log.warning("engine %s: no final snapshot (%s)", self.lease.node, exc)
        log.info("engine %s stopped after %d commands", self.lease.node, self.commands_applied)

    def turn(self) -> None:
        """One turn of the loop: as a standby, try to lead; as the leader, one step."""
        if not self.is_leader:
            if not self.lease.epoch:
                sent = time.monotonic()
                if not self.lease.try_acquire():
                    self.stop_event.wait(self.settings.engine_lease_ms / 6000)
                    return
                self.renewed_at = sent
            if not self.lease_fresh():  # taken, but becoming the leader failed for too long
                self.step_down("the lease went stale before the books were restored")
                return
            self.become_leader()
            return
        if self.lost_epoch == self.lease.epoch:
            self.step_down("lease lost")
            return
        if not self.lease_fresh():
            self.step_down("the lease could not be renewed in time")
            return
        if self.step():
            self.idle = self.settings.engine_poll_seconds
        else:
            self.maybe_snapshot(force=False)
            self.stop_event.wait(self.idle)
            self.idle = min(self.idle * 2, self.settings.engine_poll_max_seconds)

    # -- one step ----------------------------------------------------------------------------

    def step(self) -> int:
        """Publish what is in hand, read every shard once, apply, publish, maybe snapshot.
        Returns commands applied. Raises (a ``TRANSIENT`` error) with nothing lost: a failed
        read applied nothing, a failed publish keeps its events in hand for the next step."""
        engine = self.engine
        assert engine is not None
        if self.unpublished and not self._publish(self.unpublished):
            return 0
        reads: list[tuple[str, list[dict[str, Any]], str | None]] = []
        behind = 0
        for shard_id, iterator in list(self.iterators.items()):
            if iterator is None:
                continue
            try:
                answer = self.kinesis.get_records(ShardIterator=iterator, Limit=1000)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") == "ExpiredIteratorException":
                    self.iterators = self._open_iterators(self.positions)  # after a long outage
                raise
            reads.append((shard_id, answer["Records"], answer.get("NextShardIterator")))
            behind = max(behind, int(answer.get("MillisBehindLatest", 0)))
        self.behind_ms = behind
        commands: list[tuple[str, str, Any]] = []
        for shard_id, records, _ in reads:
            for record in records:
                try:
                    command = json.loads(record["Data"], parse_float=Decimal)
                except ValueError:
                    log.error("unreadable command %s on %s skipped", record["SequenceNumber"], shard_id)
                    command = None
                commands.append((shard_id, record["SequenceNumber"], command))
        self._know_symbols({c.get("symbol") for _, _, c in commands if isinstance(c, dict)})
        # From here on nothing fails before the publish: the state moves with the positions.
        by_symbol: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for shard_id, sequence, command in commands:
            if isinstance(command, dict):
                for event in engine.process(command):
                    by_symbol[event["symbol"]].append(event)
            self.positions[shard_id] = sequence
        for shard_id, _, next_iterator in reads:
            self.iterators[shard_id] = next_iterator
        applied = len(commands)
        self.commands_applied += applied
        self.applied_since_snapshot += applied
        if by_symbol:
            self.unpublished = dict(by_symbol)
            self.held_since = time.monotonic()
            if not self._publish(self.unpublished):
                return 0
        if applied:
            self.maybe_snapshot(force=False)
        return applied

    def _publish(self, by_symbol: Mapping[str, list[dict[str, Any]]]) -> bool:
        """Publish events in hand, only while the lease is ours. False: stepped down."""
        if not self.lease_fresh():
            self.step_down("the lease could not be renewed before publishing")
            return False
        try:
            holds = self.lease.holds()
        except redis.RedisError:
            holds = True  # Redis unreachable: the fresh lease cannot have been given to anyone else
        if not holds:
            self.step_down("lease lost before publishing")  # the successor replays these commands
            return False
        self.publisher.publish(by_symbol, threading.Event())
        self.unpublished = {}
        return True

    def _know_symbols(self, symbols: set[Any]) -> None:
        """Commands for a symbol listed after the engine started: read the instruments again
        (at most once a second), before any of the step's commands is applied. The orders API
        admits a symbol only once it is listed, so the listing is in the table before its first
        command reaches the engine."""
        assert self.engine is not None
        if all(not isinstance(symbol, str) or symbol in self.instruments for symbol in symbols):
            return
        if time.monotonic() - self.instruments_read_at < 1.0:
            return
        self.instruments_read_at = time.monotonic()
        for instrument in load_instruments(self.settings.instruments_table).values():
            if instrument.symbol not in self.instruments:
                self.engine.set_instrument(instrument)
                self.instruments[instrument.symbol] = instrument
                log.info("instrument %s listed", instrument.symbol)

    def maybe_snapshot(self, *, force: bool) -> None:
        if self.engine is None or not self.applied_since_snapshot or self.unpublished:
            return  # events in hand: a snapshot now would cover commands whose events are unpublished
        due = (
            self.applied_since_snapshot >= self.settings.engine_snapshot_every
            or time.monotonic() - self.last_snapshot >= self.settings.engine_snapshot_seconds
        )
        if not (due or force):
            return
        state = {"positions": self.positions, "epoch": self.lease.epoch, "engine": self.engine.snapshot()}
        if not self.lease.set_if_leader(self.snapshot_key, json.dumps(state, separators=(",", ":"))):
            self.step_down("lease lost before the snapshot")
            return
        self.applied_since_snapshot = 0
        self.last_snapshot = time.monotonic()
        settle_heap()


def settle_heap() -> None:
    """Collect everything once, then move the survivors (books, window of seen ids) to the
    permanent generation. Automatic collections then scan only what was made since, which
    keeps each one short: a full scan of a book of a few hundred thousand orders pauses the
    engine for tens of milliseconds. Called at points that already walk the whole state (a
    restore, a snapshot); unfreezing first lets that collection reclaim frozen garbage too."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s matching %(levelname)s %(message)s")
    settings = load_settings(EngineSettings)  # from the environment; fails fast
    process = EngineProcess(settings)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        process.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    process.start()
    print("matching engine ready", flush=True)
    process.run()
