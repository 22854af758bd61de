"""Event source mappings with Lambda's semantics, for every one the template declares.

* Kinesis and DynamoDB streams: one poller per shard, records in shard order, batches up to
  ``BatchSize`` gathered for at most ``MaximumBatchingWindowInSeconds``; with
  ``ReportBatchItemFailures`` the checkpoint moves to just before the first failed record and the
  rest is retried; a function error retries the batch (halved each time when
  ``BisectBatchOnFunctionError``); after ``MaximumRetryAttempts`` (or past
  ``MaximumRecordAgeInSeconds``) the batch's description goes to the ``OnFailure`` destination and
  the shard moves on. Checkpoints are kept per mapping and shard (in Redis when one is given).
* SQS: batches of ``BatchSize`` within the window; successes are deleted, reported failures and
  failed invocations return to the queue after its visibility timeout, and the queue's redrive
  policy moves a message to its DLQ after ``maxReceiveCount`` receives.
* Schedule: ``rate(...)`` and ``cron(...)`` expressions, in UTC, with the scheduled-event payload.

Polling is faster than Lambda's (every 50 ms while records flow, backing off on an idle shard to
100 ms for a mapping without a batching window and 250 ms for one with, instead of about once a
second) so a local round trip stays well under a second.
A mapping with a batching window reads its shard 4 times a second while it gathers a batch: the
consumers off the order's path (audit, positions, surveillance, ...) make fewer reads and take
larger batches, which they write with fewer requests.
Every mapping polls every shard of its stream: with a dozen mappings, idle shards polled 10 times
a second kept the embedded AWS busy with empty reads (over a hundred a second). ``nexus up`` has its
mappings share their reads (``SharedShards``): one ``GetRecords`` of a shard serves every mapping
of its stream, each keeping its own place, batches, retries and checkpoints. A shared shard is
read at most every 25 ms while quiet, and every 100 ms while busy (``BUSY_RECORDS_PER_S``).
"""

from __future__ import annotations

import base64
import calendar
import json
import logging
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from botocore.exceptions import ClientError

from nexus.local import signing
from nexus.local.lambdas import InvokeResult, LocalLambda
from nexus.local.model import EventSource
from nexus.local.provision import AwsClients

log = logging.getLogger("nexus.local.esm")

POLL_INTERVAL_S = 0.05
IDLE_BACKOFF_MAX_S = 0.25  # an idle shard is polled less often, down to 4 times a second
FEED_READ_INTERVAL_S = 0.025  # a shared shard is read at most 40 times a second, whoever asks
# ... but a mapping without a window (on the order's path) asks its shared feed every 25 ms: the
# feed reads the shard at most that often whoever asks, so a shorter wait reads nothing more, and
# a longer one was most of an idle platform's round trip (a fill waited up to 100 ms here)
IDLE_WAIT_ON_PATH_S = FEED_READ_INTERVAL_S
# A busy shard (at least BUSY_RECORDS_PER_S records read over the last FLOW_WINDOW_S) is read at
# most every BUSY_READ_INTERVAL_S: its mappings then take a few records per invocation instead of
# one or two, and each invocation's fixed cost (the worker's, and the batch's reads and writes) is
# shared. At about 50 orders/s it cut the order path's consumers' invocations by a third and the
# CPU per order by 5 %. A quiet shard (an idle platform's round trip, a handful of records a
# second) keeps the 25 ms spacing, so nothing waits on it.
BUSY_READ_INTERVAL_S = 0.1
BUSY_RECORDS_PER_S = 20
FLOW_WINDOW_S = 1.0
WINDOW_POLL_S = 0.25  # within MaximumBatchingWindowInSeconds, a shard is read 4 times a second
SHARED_READ_LIMIT = 1000  # records per read of a shared shard (DynamoDB Streams' maximum)
FEED_TRIM_AT = 256  # records every subscriber has read are dropped in chunks of at least this many
# An empty read of a shard at the embedded AWS waits there this long for records (answered as soon
# as one is added): an idle shard is read 4 times a second, not 40, and a record reaches its
# mappings when it is added, not at the next read
READ_WAIT_MS = 250
FEED_WAIT_SLACK_S = 1.0  # past the read's wait, how long a subscriber waits for another's read to end


class Checkpoints(Protocol):
    def get(self, key: str) -> str | None: ...

    def set(self, key: str, value: str) -> None: ...


class MemoryCheckpoints:
    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._lock = threading.Lock()

    def get(self, key: str) -> str | None:
        with self._lock:
            return self._data.get(key)

    def set(self, key: str, value: str) -> None:
        with self._lock:
            self._data[key] = value


class RedisCheckpoints:
    def __init__(self, client: Any, prefix: str) -> None:
        self._client = client
        self._prefix = prefix

    def get(self, key: str) -> str | None:
        value = self._client.get(self._prefix + key)
        return value.decode() if isinstance(value, bytes) else value

    def set(self, key: str, value: str) -> None:
        self._client.set(self._prefix + key, value)


def _batch_failures(result: InvokeResult, enabled: bool) -> list[str] | None:
    """Item identifiers reported as failed; None when the response is not a valid report."""
    if not enabled or not isinstance(result.payload, dict):
        return []
    failures = result.payload.get("batchItemFailures")
    if failures is None:
        return []
    if not isinstance(failures, list):
        return None
    ids = []
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not identifier:
            return None
        ids.append(str(identifier))
    return ids


# -- streams ---------------------------------------------------------------------------------


@dataclass
class _Record:
    sequence: str
    arrival: float
    event: dict[str, Any]


class _StreamSource(Protocol):
    arn: str
    info_key: str

    def shards(self) -> list[str]: ...

    def iterator(self, shard: str, after: str | None, starting_position: str) -> str | None: ...

    def read(self, iterator: str, limit: int) -> tuple[list[_Record], str | None]: ...


def _reads_wait_for_records(client: Any) -> Any:
    """``client``, whose ``GetRecords`` wait at the embedded AWS for records (``READ_WAIT_MS``)
    when this process's AWS is the embedded one; anywhere else they are plain reads."""
    if signing.embedded():
        def wait(params: dict[str, Any], **_: Any) -> None:
            params["headers"][signing.READ_WAIT_HEADER] = str(READ_WAIT_MS)

        service = client.meta.service_model.service_id.hyphenize()
        client.meta.events.register(f"before-call.{service}.GetRecords", wait, unique_id="nexus-read-wait")
    return client


_RAW_ANSWER = "NexusRawAnswer"  # where a GetRecords answer, as sent, is kept (``_records_as_sent``)


def _records_as_sent(client: Any) -> Any:
    """``client``, whose ``GetRecords`` answers are given as sent (the JSON of the stream's
    protocol, under ``_RAW_ANSWER``) instead of parsed. A Lambda event carries a record in that
    form: a Kinesis record's data base64, a DynamoDB stream record's images typed
    (``{"S": ...}``). botocore's parsing walked the output model for every attribute of every
    record, then the event was made of it again (data re-encoded, binaries too): a quarter of
    ``nexus up``'s CPU under load. An answer that is not a success is parsed as ever (the
    error it raises)."""

    def keep(response_dict: dict[str, Any], customized_response_dict: dict[str, Any], **_: Any) -> None:
        if response_dict.get("status_code") == 200:
            customized_response_dict[_RAW_ANSWER] = json.loads(response_dict["body"])
            response_dict["body"] = b"{}"  # nothing left to parse

    service = client.meta.service_model.service_id.hyphenize()
    client.meta.events.register(f"before-parse.{service}.GetRecords", keep, unique_id="nexus-records-as-sent")
    return client


class _KinesisSource:
    info_key = "KinesisBatchInfo"

    def __init__(self, clients: AwsClients, arn: str, region: str) -> None:
        self.client = _records_as_sent(_reads_wait_for_records(clients.client("kinesis")))
        self.arn = arn
        self.name = arn.split("/", 1)[1]
        self.region = region

    def shards(self) -> list[str]:
        return [s["ShardId"] for s in self.client.list_shards(StreamName=self.name)["Shards"]]

    def iterator(self, shard: str, after: str | None, starting_position: str) -> str | None:
        args: dict[str, Any] = {"StreamName": self.name, "ShardId": shard}
        if after:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=after)
        else:
            args["ShardIteratorType"] = starting_position
        return self.client.get_shard_iterator(**args).get("ShardIterator")  # type: ignore[no-any-return]

    def read(self, iterator: str, limit: int) -> tuple[list[_Record], str | None]:
        answer = self.client.get_records(ShardIterator=iterator, Limit=min(limit, 10000))[_RAW_ANSWER]
        records = []
        for r in answer.get("Records") or ():
            arrival = float(r["ApproximateArrivalTimestamp"])  # epoch seconds, as the protocol sends it
            records.append(
                _Record(
                    r["SequenceNumber"],
                    arrival,
                    {
                        "kinesis": {
                            "kinesisSchemaVersion": "1.0",
                            "partitionKey": r["PartitionKey"],
                            "sequenceNumber": r["SequenceNumber"],
                            "data": r["Data"],  # base64, as sent
                            "approximateArrivalTimestamp": arrival,
                        },
                        "eventSource": "aws:kinesis",
                        "eventVersion": "1.0",
                        "eventID": f"{{shard}}:{r['SequenceNumber']}",
                        "eventName": "aws:kinesis:record",
                        "invokeIdentityArn": "arn:aws:iam::000000000000:role/local",
                        "awsRegion": self.region,
                        "eventSourceARN": self.arn,
                    },
                )
            )
        return records, answer.get("NextShardIterator")


class _DynamoDBSource:
    info_key = "DDBStreamBatchInfo"

    def __init__(self, clients: AwsClients, arn: str, region: str) -> None:
        self.client = _records_as_sent(_reads_wait_for_records(clients.client("dynamodbstreams")))
        self.arn = arn
        self.region = region

    def shards(self) -> list[str]:
        description = self.client.describe_stream(StreamArn=self.arn)["StreamDescription"]
        return [s["ShardId"] for s in description["Shards"]]

    def iterator(self, shard: str, after: str | None, starting_position: str) -> str | None:
        args: dict[str, Any] = {"StreamArn": self.arn, "ShardId": shard}
        if after:
            args.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", SequenceNumber=after)
        else:
            args["ShardIteratorType"] = starting_position
        return self.client.get_shard_iterator(**args).get("ShardIterator")  # type: ignore[no-any-return]

    def read(self, iterator: str, limit: int) -> tuple[list[_Record], str | None]:
        answer = self.client.get_records(ShardIterator=iterator, Limit=min(limit, 1000))[_RAW_ANSWER]
        records = []
        for r in answer.get("Records") or ():
            dynamodb = dict(r["dynamodb"])  # images typed, binaries base64: as a Lambda event has them
            created = dynamodb.get("ApproximateCreationDateTime")
            arrival = float(created) if isinstance(created, int | float) else time.time()
            dynamodb["ApproximateCreationDateTime"] = arrival
            records.append(
                _Record(
                    dynamodb["SequenceNumber"],
                    arrival,
                    {
                        "eventID": r.get("eventID"),
                        "eventName": r.get("eventName"),
                        "eventVersion": r.get("eventVersion", "1.1"),
                        "eventSource": "aws:dynamodb",
                        "awsRegion": self.region,
                        "dynamodb": dynamodb,
                        "eventSourceARN": self.arn,
                    },
                )
            )
        return records, answer.get("NextShardIterator")


class _Subscriber:
    """One mapping's place in a shared shard: ``position`` is the absolute index of the next record
    it reads; ``after`` (its checkpoint) makes it skip the records up to that sequence number."""

    def __init__(self, position: int, after: str | None) -> None:
        self.position = position
        self.after = _sequence_key(after) if after else None


def _sequence_key(sequence: str) -> tuple[int, str]:
    """Kinesis and DynamoDB Streams sequence numbers are decimal strings of growing value."""
    return (len(sequence), sequence)


class _ShardFeed:
    """One shard read once for every mapping that shares it (see ``SharedShards``).

    The records read are kept until every subscriber has read past them. A subscriber that finds
    nothing new triggers a read of the shard, at most one every ``FEED_READ_INTERVAL_S`` whoever
    asks: while one subscriber reads, the others that find nothing wait for its answer instead of
    each reading the shard. At the embedded AWS an empty read waits there for records
    (``READ_WAIT_MS``), so a record reaches the subscribers when it is added."""

    def __init__(self, source: _StreamSource, shard: str, starting_position: str, after: str | None) -> None:
        self.source = source
        self.shard = shard
        self.starting_position = starting_position
        self.start_after = after  # the feed reads from just after this sequence number (None: the position)
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # a read of the shard ended
        self.reading = False  # a subscriber's read of the shard is under way (the lock let go)
        self.records: list[_Record] = []
        self.base = 0  # absolute index of records[0]
        self.iterator: str | None = None
        self.dropped_through: str | None = None  # the sequence number of the last record dropped
        self.closed = False
        self.last_read = float("-inf")
        self.flow: deque[tuple[float, int]] = deque()  # (when, records) of the reads that found some
        self.subscribers: dict[int, _Subscriber] = {}

    def covers(self, starting_position: str, after: str | None) -> bool:
        """Whether a subscriber starting there can read from this feed. A ``LATEST`` feed serves
        ``LATEST`` subscribers, from the records read after they joined. Any other feed serves a
        subscriber whose checkpoint is at or after both the feed's start and the last record the
        feed has dropped (none, for a subscriber without one, unless the feed reads from the
        shard's start and has dropped nothing)."""
        latest = starting_position == "LATEST" and not after
        if self.starting_position == "LATEST" or latest:
            return self.starting_position == "LATEST" and latest
        for bound in (self.start_after, self.dropped_through):
            if bound is not None and (after is None or _sequence_key(after) < _sequence_key(bound)):
                return False
        return True

    def subscribe(self, starting_position: str, after: str | None) -> int | None:
        """A new subscriber, if the feed ``covers`` its start (checked under the lock that trimming
        takes, so no record it needs is dropped in between): a ``LATEST`` one from the next record
        read, any other from the first record kept, skipping those up to its checkpoint. None when
        the feed cannot serve it."""
        with self.changed:
            while self.reading:  # a read under way holds records that may be older than the subscriber
                self.changed.wait()
            if not self.covers(starting_position, after):
                return None
            token = len(self.subscribers)
            latest = starting_position == "LATEST" and not after
            self.subscribers[token] = _Subscriber(self.base + len(self.records) if latest else self.base, after)
            return token

    def read(self, token: int, limit: int) -> tuple[list[_Record], bool]:
        """Up to ``limit`` records after the subscriber's place, and whether the shard is closed and
        read to its end for it. A subscriber that finds nothing new reads the shard, or, while
        another's read is under way, waits for that read's records."""
        with self.changed:
            subscriber = self.subscribers[token]
            taken = self._take(subscriber, limit)
            if not taken and not self.closed:
                if self.reading:
                    self.changed.wait(READ_WAIT_MS / 1000 + FEED_WAIT_SLACK_S)
                    taken = self._take(subscriber, limit)
                elif time.monotonic() - self.last_read >= self.read_interval():
                    self._read_shard()
                    taken = self._take(subscriber, limit)
            self._trim()
            drained = self.closed and subscriber.position >= self.base + len(self.records)
            return taken, drained

    def read_interval(self) -> float:
        """How long after a read the shard may be read again: ``FEED_READ_INTERVAL_S``, or
        ``BUSY_READ_INTERVAL_S`` while the shard is busy (see the constants)."""
        since = time.monotonic() - FLOW_WINDOW_S
        while self.flow and self.flow[0][0] < since:
            self.flow.popleft()
        busy = sum(count for _, count in self.flow) >= BUSY_RECORDS_PER_S * FLOW_WINDOW_S
        return BUSY_READ_INTERVAL_S if busy else FEED_READ_INTERVAL_S

    def _take(self, subscriber: _Subscriber, limit: int) -> list[_Record]:
        start = subscriber.position - self.base
        if subscriber.after is not None:
            while start < len(self.records) and _sequence_key(self.records[start].sequence) <= subscriber.after:
                start += 1
            if start < len(self.records):
                subscriber.after = None  # past its checkpoint: every later record is new to it
        taken = self.records[start : start + limit]
        subscriber.position = self.base + start + len(taken)
        return taken

    def _read_shard(self) -> None:
        """Read the shard once. Called with the lock held, which is let go during the request (a
        read may wait at the embedded AWS for records): the other subscribers meanwhile take what
        was read before, and wait for this read instead of making their own."""
        self.last_read = time.monotonic()
        self.reading = True
        iterator = self.iterator
        last = self.records[-1].sequence if self.records else self.dropped_through or self.start_after
        self.lock.release()
        try:
            try:
                if iterator is None:
                    iterator = self.source.iterator(self.shard, last, self.starting_position)
                answer = self.source.read(iterator, SHARED_READ_LIMIT) if iterator is not None else ([], None)
            finally:
                self._read_ended()
        except ClientError:
            self.iterator = None  # expired or refused: the next read starts again after the last record
            raise
        records, self.iterator = answer
        for record in records:
            record.event["eventID"] = record.event.get("eventID", "").replace("{shard}", self.shard)
        self.records.extend(records)
        if records:
            self.flow.append((time.monotonic(), len(records)))
        if self.iterator is None:
            self.closed = True

    def _read_ended(self) -> None:
        """Take the lock back after a read, and wake the subscribers waiting for it."""
        self.lock.acquire()
        self.reading = False
        self.changed.notify_all()

    def _trim(self) -> None:
        done = min(s.position for s in self.subscribers.values()) - self.base
        if done >= FEED_TRIM_AT:
            self.dropped_through = self.records[done - 1].sequence
            del self.records[:done]
            self.base += done


class _SharedSource:
    """A mapping's view of a stream whose shards it shares with the other mappings of the same
    stream (``SharedShards``): the ``_StreamSource`` protocol, with iterators that are places in
    the shared feed."""

    def __init__(self, shared: SharedShards, source: _StreamSource) -> None:
        self.shared = shared
        self.source = source
        self.arn = source.arn
        self.info_key = source.info_key

    def shards(self) -> list[str]:
        return self.source.shards()

    def iterator(self, shard: str, after: str | None, starting_position: str) -> str | None:
        """A place in the shard's shared feed. A checkpoint is looked up in the shard first, as the
        mapping's own iterator would be: one the shard does not have raises ``ClientError``."""
        if after is not None:
            self.source.iterator(shard, after, starting_position)
        feed, token = self.shared.subscribe(self.source, shard, starting_position, after)
        return f"{id(feed)}:{token}"

    def read(self, iterator: str, limit: int) -> tuple[list[_Record], str | None]:
        feed_id, token = iterator.split(":")
        records, drained = self.shared.feeds_by_id[int(feed_id)].read(int(token), limit)
        return records, None if drained else iterator


class SharedShards:
    """Every stream mapping of a local platform reads a shard through one feed per shard: the
    embedded AWS answers one ``GetRecords`` for all of them instead of one per mapping (eight
    mappings read ``execution-events``). On AWS each mapping polls for itself and Lambda does not
    bill its pollers; locally those reads were the largest part of the emulator's time. A mapping
    keeps its own batches, windows, retries and checkpoints: only the reading is shared. A mapping
    whose checkpoint is older than a feed's start (after a restart with saved checkpoints) gets a
    feed of its own."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.feeds: dict[tuple[str, str], list[_ShardFeed]] = {}
        self.feeds_by_id: dict[int, _ShardFeed] = {}

    def share(self, source: _StreamSource) -> _StreamSource:
        return _SharedSource(self, source)

    def subscribe(
        self, source: _StreamSource, shard: str, starting_position: str, after: str | None
    ) -> tuple[_ShardFeed, int]:
        """A place for a mapping in a feed of the shard that covers its start, a new feed if none."""
        with self.lock:
            feeds = self.feeds.setdefault((source.arn, shard), [])
            for feed in feeds:
                token = feed.subscribe(starting_position, after)
                if token is not None:
                    return feed, token
            feed = _ShardFeed(source, shard, starting_position, after)
            feeds.append(feed)
            self.feeds_by_id[id(feed)] = feed
            token = feed.subscribe(starting_position, after)
            assert token is not None  # a feed covers the start it was made for
            return feed, token


class _BatchSizer:
    """How many records a shard's next batch may hold: ``BatchSize``, halved after an invocation
    timed out, then grown back by a quarter after each batch that went through. ``BatchSize`` is
    a maximum: Lambda also invokes with fewer records. On a loaded machine a full batch can take
    longer than the function's ``Timeout``; sending the same full batch again would only time out
    again, wasting the work of every attempt."""

    def __init__(self, batch_size: int) -> None:
        self.maximum = batch_size
        self.limit = batch_size

    def timed_out(self, size: int) -> None:
        self.limit = max(1, min(self.limit, size // 2))

    def succeeded(self) -> None:
        self.limit = min(self.maximum, self.limit + max(1, self.limit // 4))


def _timed_out(result: InvokeResult) -> bool:
    return (result.error or {}).get("errorType") == "Sandbox.Timedout"


class StreamMapping:
    """One Kinesis or DynamoDB stream event source mapping."""

    def __init__(
        self,
        lambdas: LocalLambda,
        source: EventSource,
        clients: AwsClients,
        region: str,
        account: str,
        checkpoints: Checkpoints,
        stop: threading.Event,
        shared: SharedShards | None = None,
    ) -> None:
        props = source.properties
        self.lambdas = lambdas
        self.source = source
        self.function_arn = f"arn:aws:lambda:{region}:{account}:function:{lambdas.pools[source.function].fn.name}"
        self.stream: _StreamSource = (
            _KinesisSource(clients, str(props["Stream"]), region)
            if source.type == "Kinesis"
            else _DynamoDBSource(clients, str(props["Stream"]), region)
        )
        if shared is not None:
            self.stream = shared.share(self.stream)
        self.batch_size = int(props.get("BatchSize", 100))
        self.window = float(props.get("MaximumBatchingWindowInSeconds", 0))
        self.starting_position = str(props.get("StartingPosition", "LATEST"))
        self.report_failures = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
        self.bisect = bool(props.get("BisectBatchOnFunctionError", False))
        self.max_retries = int(props.get("MaximumRetryAttempts", -1))
        self.max_age = int(props.get("MaximumRecordAgeInSeconds", -1))
        destination = ((props.get("DestinationConfig") or {}).get("OnFailure") or {}).get("Destination")
        self.destination = str(destination) if destination else None
        self.clients = clients
        self.checkpoints = checkpoints
        self.stop = stop
        self.threads: list[threading.Thread] = []
        self.key = f"{source.function}:{source.name}"
        self.enabled = bool(props.get("Enabled", True))

    def start(self) -> None:
        if not self.enabled:
            return
        for shard in self.stream.shards():
            thread = threading.Thread(
                target=self._run_shard, args=(shard,), name=f"esm-{self.key}-{shard}", daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _run_shard(self, shard: str) -> None:
        checkpoint_key = f"{self.key}:{self.stream.arn}:{shard}"
        after = self.checkpoints.get(checkpoint_key)
        try:
            iterator = self.stream.iterator(shard, after, self.starting_position)
        except ClientError:
            log.warning(
                "%s: checkpoint %s not found on %s, starting at %s", self.key, after, shard, self.starting_position
            )
            iterator = self.stream.iterator(shard, None, self.starting_position)
        buffer: list[_Record] = []
        first_idle = POLL_INTERVAL_S if self.window else IDLE_WAIT_ON_PATH_S
        idle = first_idle
        sizer = _BatchSizer(self.batch_size)
        while not self.stop.is_set():
            try:
                deadline = time.monotonic() + self.window
                while iterator and len(buffer) < self.batch_size and not self.stop.is_set():
                    records, iterator = self.stream.read(iterator, self.batch_size - len(buffer))
                    buffer.extend(records)
                    if len(buffer) >= self.batch_size or time.monotonic() >= deadline:
                        break
                    if self.window:  # a batch is gathered over the window: reads spaced, not back to back
                        self.stop.wait(min(WINDOW_POLL_S, max(0.0, deadline - time.monotonic())))
                    elif not records:
                        self.stop.wait(POLL_INTERVAL_S)
                if not buffer:
                    if iterator is None:
                        return  # the shard is closed and fully read
                    self.stop.wait(idle)
                    idle = min(idle * 2, IDLE_BACKOFF_MAX_S) if self.window else first_idle
                    continue
                idle = first_idle
                batch = buffer[: sizer.limit]
                for record in batch:
                    record.event["eventID"] = record.event.get("eventID", "").replace("{shard}", shard)
                consumed = self._deliver(shard, batch, sizer)
                if consumed:
                    del buffer[:consumed]
                    self.checkpoints.set(checkpoint_key, batch[consumed - 1].sequence)
            except Exception:  # keep the shard's poller alive, as Lambda's pollers are
                if self.stop.is_set():
                    return
                log.exception("%s: poller error on %s", self.key, shard)
                self.stop.wait(1.0)

    def _deliver(self, shard: str, batch: list[_Record], sizer: _BatchSizer | None = None) -> int:
        """Deliver one batch with Lambda's retry rules; returns how many records are done."""
        done = 0
        pending = [batch]
        attempts = 0
        while pending and not self.stop.is_set():
            part = pending[0]
            if self.max_age >= 0:
                fresh_from = next((i for i, r in enumerate(part) if time.time() - r.arrival <= self.max_age), len(part))
                if fresh_from:
                    self._send_to_destination(shard, part[:fresh_from], "RecordAgeExceeded", attempts)
                    done += fresh_from
                    part = part[fresh_from:]
                    if not part:
                        pending.pop(0)
                        continue
                    pending[0] = part
            result = self.lambdas.invoke(self.source.function, {"Records": [r.event for r in part]})
            function_error = not result.ok
            if sizer is not None:
                if _timed_out(result):
                    sizer.timed_out(len(part))
                elif result.ok:
                    sizer.succeeded()
            if not function_error:
                failed = _batch_failures(result, self.report_failures)
                if failed == []:
                    done += len(part)
                    pending.pop(0)
                    attempts = 0
                    continue
                ids = [r.event["kinesis"]["sequenceNumber"] if "kinesis" in r.event else r.sequence for r in part]
                positions = [ids.index(f) for f in failed or [] if f in ids]
                if failed is None or not positions:
                    function_error = True  # an invalid report counts as a failure of the whole batch
                else:
                    first = min(positions)
                    done += first
                    part = part[first:]
                    pending[0] = part
            attempts += 1
            if 0 <= self.max_retries < attempts:
                self._send_to_destination(shard, part, "RetryAttemptsExhausted", attempts, result)
                done += len(part)
                pending.pop(0)
                attempts = 0
                continue
            if function_error:
                log.warning(
                    "%s: invocation failed (%s), attempt %d",
                    self.key,
                    (result.error or {}).get("errorMessage", "invalid batch report"),
                    attempts,
                )
                if self.bisect and len(part) > 1:
                    middle = len(part) // 2
                    pending[0:1] = [part[:middle], part[middle:]]
            self.stop.wait(min(0.05 * attempts, 1.0))
        return done

    def _send_to_destination(
        self, shard: str, part: list[_Record], condition: str, attempts: int, result: InvokeResult | None = None
    ) -> None:
        log.error("%s: %d record(s) from %s discarded (%s)", self.key, len(part), shard, condition)
        if not self.destination:
            return
        message = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": self.function_arn,
                "condition": condition,
                "approximateInvokeCount": attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled" if result is not None and not result.ok else "",
            },
            "version": "1.0",
            "timestamp": datetime.now(UTC).isoformat(),
            self.stream.info_key: {
                "shardId": shard,
                "startSequenceNumber": part[0].sequence,
                "endSequenceNumber": part[-1].sequence,
                "approximateArrivalOfFirstRecord": datetime.fromtimestamp(part[0].arrival, UTC).isoformat(),
                "approximateArrivalOfLastRecord": datetime.fromtimestamp(part[-1].arrival, UTC).isoformat(),
                "batchSize": len(part),
                "streamArn": self.stream.arn,
            },
        }
        if ":sqs:" in self.destination:
            sqs = self.clients.client("sqs")
            name = self.destination.rsplit(":", 1)[-1]
            url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(message))
        elif ":sns:" in self.destination:
            self.clients.client("sns").publish(TopicArn=self.destination, Message=json.dumps(message))


# -- SQS -----------------------------------------------------------------------------------------


class SqsMapping:
    def __init__(
        self, lambdas: LocalLambda, source: EventSource, clients: AwsClients, region: str, stop: threading.Event
    ) -> None:
        props = source.properties
        self.lambdas = lambdas
        self.source = source
        self.sqs = clients.client("sqs")
        self.arn = str(props["Queue"])
        self.url = self.sqs.get_queue_url(QueueName=self.arn.rsplit(":", 1)[-1])["QueueUrl"]
        self.batch_size = int(props.get("BatchSize", 10))
        self.window = float(props.get("MaximumBatchingWindowInSeconds", 0))
        self.report_failures = "ReportBatchItemFailures" in (props.get("FunctionResponseTypes") or [])
        self.region = region
        self.stop = stop
        self.enabled = bool(props.get("Enabled", True))
        self.thread = threading.Thread(target=self._run, name=f"esm-{source.function}-{source.name}", daemon=True)

    def start(self) -> None:
        if self.enabled:
            self.thread.start()

    def _receive(self, count: int, wait: int) -> list[dict[str, Any]]:
        answer = self.sqs.receive_message(
            QueueUrl=self.url,
            MaxNumberOfMessages=max(1, min(10, count)),
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(answer.get("Messages", []))

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                messages = self._receive(self.batch_size, 1)
                deadline = time.monotonic() + self.window
                while messages and len(messages) < self.batch_size and time.monotonic() < deadline:
                    more = self._receive(self.batch_size - len(messages), 0)
                    if not more:
                        self.stop.wait(POLL_INTERVAL_S)
                    messages.extend(more)
                if messages:
                    self._deliver(messages)
            except Exception:  # keep polling, as Lambda's pollers do
                if self.stop.is_set():
                    return
                log.exception("%s: SQS poller error", self.source.function)
                self.stop.wait(1.0)

    def _deliver(self, messages: list[dict[str, Any]]) -> None:
        records = [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": {
                    name: {
                        "stringValue": attr.get("StringValue"),
                        "binaryValue": base64.b64encode(attr["BinaryValue"]).decode()
                        if "BinaryValue" in attr
                        else None,
                        "stringListValues": [],
                        "binaryListValues": [],
                        "dataType": attr.get("DataType"),
                    }
                    for name, attr in (m.get("MessageAttributes") or {}).items()
                },
                "md5OfBody": m.get("MD5OfBody"),
                "eventSource": "aws:sqs",
                "eventSourceARN": self.arn,
                "awsRegion": self.region,
            }
            for m in messages
        ]
        result = self.lambdas.invoke(self.source.function, {"Records": records})
        if not result.ok:
            log.warning("%s: invocation failed: %s", self.source.function, (result.error or {}).get("errorMessage"))
            return  # every message returns to the queue after its visibility timeout
        failed = _batch_failures(result, self.report_failures)
        if failed is None:
            return  # an invalid report fails the whole batch
        keep = set(failed)
        done = [m for m in messages if m["MessageId"] not in keep]
        for start in range(0, len(done), 10):
            chunk = done[start : start + 10]
            self.sqs.delete_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
            )


# -- schedules -------------------------------------------------------------------------------

_RATE = re.compile(r"^rate\((\d+)\s+(minute|minutes|hour|hours|day|days)\)$")
_CRON = re.compile(r"^cron\((.+)\)$")
_MONTHS = {m.upper(): i for i, m in enumerate(calendar.month_abbr) if m}
_DAYS = {"SUN": 1, "MON": 2, "TUE": 3, "WED": 4, "THU": 5, "FRI": 6, "SAT": 7}


def _cron_field(text: str, low: int, high: int, names: dict[str, int]) -> set[int] | None:
    """Values of one AWS cron field; None for ``*`` or ``?`` (any)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        step = 1
        if "/" in part:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", ""):
            start, end = low, high
        elif "-" in part:
            a, b = part.split("-", 1)
            start, end = names.get(a.upper(), None) or int(a), names.get(b.upper(), None) or int(b)
        else:
            start = names.get(part.upper(), None) or int(part)
            end = start if step == 1 else high
        if not (low <= start <= high and low <= end <= high):
            raise ValueError(f"cron value out of range: {text}")
        values.update(range(start, end + 1, step))
    return values


@dataclass(frozen=True)
class Cron:
    """An EventBridge cron expression: minutes hours day-of-month month day-of-week year (UTC).

    Supports numbers, names, ``*``, ``?``, ranges, lists and steps; not ``L``, ``W`` or ``#``."""

    minutes: set[int] | None
    hours: set[int] | None
    days: set[int] | None
    months: set[int] | None
    weekdays: set[int] | None  # 1 = Sunday ... 7 = Saturday
    years: set[int] | None

    @classmethod
    def parse(cls, expression: str) -> Cron:
        fields = expression.split()
        if len(fields) != 6 or "#" in expression:
            raise ValueError(f"unsupported cron expression: {expression}")  # L, W fail in int()
        return cls(
            _cron_field(fields[0], 0, 59, {}),
            _cron_field(fields[1], 0, 23, {}),
            _cron_field(fields[2], 1, 31, {}),
            _cron_field(fields[3], 1, 12, _MONTHS),
            _cron_field(fields[4], 1, 7, _DAYS),
            _cron_field(fields[5], 1970, 2199, {}),
        )

    def matches(self, at: datetime) -> bool:
        weekday = (at.isoweekday() % 7) + 1
        checks = (
            (self.minutes, at.minute),
            (self.hours, at.hour),
            (self.days, at.day),
            (self.months, at.month),
            (self.weekdays, weekday),
            (self.years, at.year),
        )
        return all(allowed is None or value in allowed for allowed, value in checks)

    def next_after(self, after: datetime) -> datetime:
        at = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
        for _ in range(60 * 24 * 366 * 2):
            if self.matches(at):
                return at
            at += timedelta(minutes=1)
        raise ValueError("cron expression never fires")


def next_fire(expression: str, after: datetime) -> datetime:
    rate = _RATE.match(expression.strip())
    if rate:
        amount, unit = int(rate.group(1)), rate.group(2).rstrip("s")
        return after + timedelta(**{f"{unit}s": amount})
    cron = _CRON.match(expression.strip())
    if cron:
        return Cron.parse(cron.group(1)).next_after(after)
    raise ValueError(f"unsupported schedule expression: {expression}")


class ScheduleMapping:
    def __init__(
        self,
        lambdas: LocalLambda,
        source: EventSource,
        region: str,
        account: str,
        stop: threading.Event,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        props = source.properties
        self.lambdas = lambdas
        self.source = source
        self.expression = str(props.get("Schedule") or props.get("ScheduleExpression"))
        self.enabled = bool(props.get("Enabled", True)) and props.get("State", "ENABLED") == "ENABLED"
        self.input = props.get("Input")
        self.region = region
        self.account = account
        self.stop = stop
        self.clock = clock
        next_fire(self.expression, clock())  # fail fast on an expression we cannot run
        self.thread = threading.Thread(target=self._run, name=f"schedule-{source.function}", daemon=True)

    def start(self) -> None:
        if self.enabled:
            self.thread.start()

    def event(self, at: datetime) -> dict[str, Any]:
        if self.input:
            return json.loads(self.input) if isinstance(self.input, str) else dict(self.input)
        return {
            "version": "0",
            "id": str(uuid.uuid4()),
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.account,
            "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [
                f"arn:aws:events:{self.region}:{self.account}:rule/{self.source.function}-{self.source.name}"
            ],
            "detail": {},
        }

    def _run(self) -> None:
        due = next_fire(self.expression, self.clock())
        while not self.stop.is_set():
            wait = (due - self.clock()).total_seconds()
            if wait > 0:
                self.stop.wait(min(wait, 1.0))
                continue
            result = self.lambdas.invoke(self.source.function, self.event(due))
            if not result.ok:
                log.error(
                    "%s: scheduled run failed: %s", self.source.function, (result.error or {}).get("errorMessage")
                )
            due = next_fire(self.expression, due)
