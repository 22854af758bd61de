"""The embedded AWS: moto's server application, served for speed.

``python -m nexus.local.aws_server --host H --port P`` serves the same WSGI application as
``moto_server``, with changes that matter when every Lambda and the engine talk to it at once:

* Requests are applied one at a time (HTTP parsing and I/O still overlap). moto's backends are
  not written for concurrent requests: two threads putting Kinesis records can be given the
  same sequence number (one record is lost), and two conditional DynamoDB writes to one key can
  both succeed. AWS makes each of those atomic, and so must the emulation. SQS long polls are
  the exception: moto waits inside them, so they run beside the others. Requests take their
  turn in arrival order: a plain lock lets a waiting request be overtaken indefinitely, and
  under load some waited past the SDK's 60 s read timeout (the SDK then sends the request
  again, and a conditional write that went through the first time is refused the second).
  A finer lock would not help: moto's request handling is pure Python, bound by the GIL.
* ... except that requests a user waits on go first (``--first APP_ID``: SDK clients whose
  User-Agent carries ``app/APP_ID``, or ``app/APP_ID.<name>``; ``nexus up`` gives that id to the
  API's functions, the consumers without a batching window and its own event source reads, and
  ``APP_ID.<container name>`` to each container). On AWS a
  background consumer's burst of writes does not delay an order's reads; here, in one queue, an
  authorizer's read waited behind a hundred audit writes. Once a background request has waited
  ``BACKGROUND_MAX_WAIT_S``, it is served after at most ``FIRST_TURNS`` first ones, so every
  request is still served within a bound.
* Reading a Kinesis shard starts at the iterator's position (a binary search over the shard's
  sequence numbers, kept as the shard grows) instead of walking the shard from its first record
  on every ``GetRecords``; putting a record finds the shard's last sequence number in constant
  time instead of copying the shard's keys.
* ``GetRecords`` answers are written as JSON directly (the same document moto's generic
  serializer writes, several times faster): every consumer of a stream reads every record, so
  this is most of the emulator's time under load.
* Requests to DynamoDB, DynamoDB Streams, Kinesis and SQS skip Flask (``_DirectJson``): the one
  route moto gives each of these services is called as its Flask view would call it, and its
  answer written as Flask would write it.
* ... and the SDK's requests to them (``POST / HTTP/1.1``, a JSON body) take a shorter way in,
  each step giving what the long way gives: the request line is not parsed, the header lines are
  kept as pairs and the WSGI environ made from them (``_KeepAliveHandler``), the request is read
  from the environ as plain values (``_JsonRequest``, not werkzeug's request with its URL, stream
  and form machinery), and the handler is set up with only the steps that apply to such a
  request (``_setup_class``). A ``GetItem`` cost the emulator 0.49-0.65 ms of CPU, most of it
  in these steps; it now costs 0.40-0.44 ms (alternating runs, three clients). moto's setup also
  reads the JSON body as a query string, so a value holding ``&Action=DeleteTable&`` made a
  ``PutItem`` delete its table; the operation is now always the one ``X-Amz-Target`` names.
* DynamoDB item operations (``GetItem``, ``PutItem``, ``UpdateItem``, ``Query``, ...) are answered
  with ``json.dumps`` of moto's result, keeping only the output shape's members, as moto's
  generic serializer does (it walks the service model for every attribute of every item, and
  was a quarter of the emulator's time), and so is DynamoDB Streams' ``GetRecords`` (timestamps
  and blobs written as the serializer writes them); errors and every other operation keep the
  serializer.
* A DynamoDB table lists its items sorted by the keys' values computed once per item (moto
  compares ``DynamoType`` objects, which builds two ``Decimal`` per comparison: sorting a
  16,000-item table took most of a second, on every ``Query`` and ``Scan`` page), and a
  ``Query`` of the table itself (not an index) reads only the keys its sort-key condition
  accepts, from the partition it names kept in key order, and of those only the ``Limit`` + 1 it
  can reach from one end (``nexus.local.partitions``): the last trade of a symbol with 3,000
  trades cost the emulator 13 ms, as much as 60 ``GetItem``, and one side of a book of 1,750
  levels 6 ms.
* A DynamoDB update expression is parsed once per distinct text (moto parses it twice per
  ``UpdateItem``; the tree it gives is only read, or copied before it is changed), so the
  handful of expressions the services use are not tokenized again on every write; a condition
  expression's syntax tree is built once per text, names and set of value placeholders (moto
  builds it twice per write; building it never looks at the values, so each request's values are
  put in the leaves of the kept tree), and the operations are made from it as moto makes them,
  once per request (moto's write handlers parse the condition to check its names and values,
  and the backend parses it again to apply it).
* An ``UpdateItem`` is validated for less: the checks that depend only on the expression, its
  names and the table's keys (one clause of each kind, no overlapping paths, no key attribute
  updated) run once per such combination; each of moto's ten passes over the expression tree
  reads the pass's node types once, not once per node; the tree is copied node by node instead
  of through ``copy.deepcopy``; and a set attribute's size and members are computed from its
  members directly (moto wrapped each in a ``DynamoType``, and measures the whole item on every
  attribute an update sets: an account's set of reservations made its updates the emulator's
  dearest requests). moto also copies the whole item twice per update, for an answer with the
  old values and for the table's stream; a copy nothing will read is not made (an account's
  reservation write went from 2.0 to 1.4 ms); and for an update answered with no attributes
  (``ReturnValues`` ``NONE``), moto's handler no longer writes out the whole item before and
  after the update and compares them attribute by attribute, only to drop both. And moto
  measures the whole item for every attribute an update sets (to refuse an item past 400 KB);
  an update of top-level attributes that cannot reach the limit (bounded from the item's size
  and the request's: every update the platform makes) is not measured (an order's update
  1.35 -> 1.15 ms, an account's reservation 1.2 -> 0.9 ms).
* A projection of top-level attributes (``ProjectionExpression``, as every one the platform
  writes) converts only those attributes to plain values and back; moto converted the whole item
  once per projected name (an account's set of reservations, on every read of the risk consumer).
  The risk consumer's ``BatchGetItem`` (an account of 150 reservations, 3 names; 4 orders, 6
  names each) went from 1.95-2.24 to 1.18-1.22 ms of the emulator's CPU.
* A new item (every ``PutItem``) is measured once against the item size limit: moto measured
  every attribute set so far each time it set one (n² sizes: a fifth of an audit record's put).
* Nested attribute values (an audit record's entries: a list of maps holding lists) are built,
  measured and written out in one walk each: moto wraps a map's values again to measure them and
  deep-copies the whole value at every level to write it out, so the cost grew with the depth
  times the size. ``PutItem`` no longer writes out the item it stored for an answer that never
  holds it, and a request's attribute values are read in one step each instead of three
  handlers. An audit record of 10 entries went from 1.9 to 0.9 ms, one of 3 from 0.86 to 0.60 ms.
* An SQS queue's visible, delayed and in-flight messages are counted reading the clock once per
  call, not once or twice per message: moto lists or counts them on every ``ReceiveMessage``,
  every wake-up of a long poll (each send wakes them) and, through the queue's attributes, every
  message sent, so a backed-up queue made every send wait (over 100 ms each with a thousand
  messages queued).
  A received message's retention is checked against the queue's period itself: moto built every
  attribute of the queue for it, counting the queue's messages three times, per message received.
  A message is deleted in one pass over the queue, not two that each built a list per message,
  and a ``DeleteMessageBatch`` in one pass for the whole batch, not one per handle, that ends at
  the last message the batch names; a receive reads the queue only up to the messages it takes
  (both near the front: messages are received oldest first). Sending a
  message reads the one queue attribute it needs (moto built them all, counting the queue's
  messages three times, per message sent). Late in a day the notifications queue held thousands
  of messages, and its sends and deletes had become a third of the emulator's time.
* A JSON request is read against the service model by visiting the members it has, not every
  member its structure could have (a DynamoDB attribute value has ten and names one), with each
  shape type's parse method looked up once: the same parameters, in 6 % less time per item
  operation.
* HTTP headers are parsed without the ``email`` package (``nexus.local.http_headers``), here and
  in every process ``nexus up`` starts.
* HTTP/1.1 keep-alive, so boto3's connection pools reuse connections. werkzeug answers every
  request with ``Connection: close`` (http.server cannot skip a request body the application left
  unread before reading the next request line), so every request paid for a new connection and
  a new server thread: over a hundred a second on an idle platform, its pollers included. Here
  every request's body is read to its end after the answer, and the connection stays open unless
  the client asks to close it. An answer's status line and headers are formatted as one string
  and written with the body (its ``Date`` formatted once a second), not header by header through
  ``http.server`` (4 % of an account's ``UpdateItem``).
* moto's list of its own service modules (read from disk on every request to route it) is read
  once, and so is each response class's list of methods (``inspect.getmembers``, on every request
  to find the action: a sixth of a ``GetItem``); request ids come from ``os.urandom`` instead of 52
  calls of ``random.choice`` (for the answer's header too, where moto also ran an XML pattern over
  every body, JSON and shard reads included).
* The garbage collector's full collections do not scan the emulator's whole state each time
  (``FrozenHeap``): every item, record and message the server holds is a Python object that lives
  as long as the server, and CPython's full collections walked all of them with the request lock
  held (4.2 s of CPU in a 2,000-order run, up to 0.6 s at a time; now 0.37 s, at most 0.05 s).
  A request no longer leaves a reference cycle behind (werkzeug's request object stored itself
  in its environ), so it is freed as soon as it is answered instead of by a collection.

``NEXUS_AWS_PROFILE=FILE`` makes the server count its requests and the time each held the lock,
per operation and resource (table, stream or queue), and write the table to ``FILE`` every 10 s:
where the emulator's time goes under load. ``FILE.json`` (every second) also counts the requests
per SDK app id, so a caller's own requests can be told apart (``nexus bench local`` counts the
market maker's, which quotes on a timer whatever the order flow, apart from the orders').
"""

from __future__ import annotations

import argparse
import base64
import bisect
import contextlib
import copy
import functools
import gc
import http.client
import io
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import datetime
from decimal import Decimal
from email.utils import formatdate
from http import HTTPStatus
from types import FrameType
from typing import Any, Final
from urllib.parse import urlparse

import moto.core.responses as moto_core_responses
import moto.dynamodb.models as moto_dynamodb_models
import moto.dynamodb.models.dynamo_type as moto_dynamo_type
import moto.dynamodb.models.table as moto_table_module
import moto.dynamodb.parsing.validators as moto_validators
import moto.dynamodb.responses as moto_dynamodb_responses
import moto.utilities.aws_headers as aws_headers
from botocore.exceptions import ClientError
from moto import backends
from moto.core.parse import BaseJSONParser, JSONParser
from moto.core.request import EnvironHeaders
from moto.core.request import Request as MotoRequest
from moto.core.responses import ActionContext, ActionResult
from moto.core.serialize import TimestampSerializer
from moto.core.utils import camelcase_to_underscores, unix_time, unix_time_millis
from moto.dynamodb.comparisons import ConditionExpressionParser
from moto.dynamodb.exceptions import ItemSizeTooLarge, ResourceNotFoundException
from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
from moto.dynamodb.models.table import StreamShard
from moto.dynamodb.models.utilities import bytesize
from moto.dynamodb.parsing.ast_nodes import DepthFirstTraverser, Node  # type: ignore[attr-defined]
from moto.dynamodb.parsing.executors import UpdateExpressionExecutor
from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]
from moto.dynamodb.responses import DynamoHandler, DynamoResult
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.iam.models import mark_account_as_visited
from moto.kinesis.models import Shard, Stream
from moto.kinesis.responses import KinesisResponse
from moto.kinesis.utils import decompose_shard_iterator
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend
from moto.sqs.responses import SQSResponse
from moto.utilities.utils import get_partition
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.http import HTTP_STATUS_CODES
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wsgi import LimitedStream, get_host

from nexus.local import http_headers, partitions, signing


@functools.cache
def _moto_modules() -> tuple[str, ...]:
    return tuple(backends.list_of_moto_modules.__wrapped__())  # type: ignore[attr-defined]


def _install_module_cache() -> None:
    original = backends.list_of_moto_modules
    if getattr(original, "__wrapped__", None) is not None:
        return

    def cached() -> Iterable[str]:
        return _moto_modules()

    cached.__wrapped__ = original  # type: ignore[attr-defined]
    backends.list_of_moto_modules = cached


BACKGROUND_MAX_WAIT_S = 0.25  # a background request waiting this long is served ...
FIRST_TURNS = 3  # ... after at most this many first ones


class FairLock:
    """A lock taken in arrival order within two classes: each waiter waits on its own lock, which
    the holder releases when it leaves, handing the lock over (``threading.Lock`` is not fair).

    Waiters that say ``first`` (``hold(first=True)``) go ahead of the others, unless the oldest of
    the others has waited ``max_wait`` seconds: then it is served once ``first_turns`` first ones
    have been since the last of the others, so neither class waits without bound, and while both
    are queued the first ones have ``first_turns`` of every ``first_turns`` + 1 turns."""

    def __init__(self, max_wait: float = BACKGROUND_MAX_WAIT_S, clock: Callable[[], float] = time.monotonic,
                 first_turns: int = FIRST_TURNS) -> None:  # fmt: skip
        self._mutex = threading.Lock()
        self._first: deque[threading.Lock] = deque()
        self._waiters: deque[tuple[float, threading.Lock]] = deque()
        self._held = False
        self._firsts = first_turns  # turns given to first ones since the last of the others
        self.max_wait = max_wait
        self.first_turns = first_turns
        self.clock = clock

    def __enter__(self) -> FairLock:
        self.acquire(first=False)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    @contextlib.contextmanager
    def hold(self, first: bool) -> Iterator[None]:
        self.acquire(first)
        try:
            yield
        finally:
            self.release()

    def acquire(self, first: bool) -> None:
        with self._mutex:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            if first:
                self._first.append(turn)
            else:
                self._waiters.append((self.clock(), turn))
        turn.acquire()  # released by the holder before us: the lock is ours

    def release(self) -> None:
        with self._mutex:
            overdue = bool(self._waiters) and self.clock() - self._waiters[0][0] >= self.max_wait
            if self._first and (not overdue or self._firsts < self.first_turns):
                self._firsts += 1
                self._first.popleft().release()
            elif self._waiters:
                self._firsts = 0
                self._waiters.popleft()[1].release()
            else:
                self._held = False


class RequestProfile:
    """Requests and lock-held seconds per (operation, resource), and the DynamoDB items each write
    request wrote and their write units; see the module docstring. The table goes to ``path`` every
    10 s, and the same figures as JSON to ``path + ".json"`` every second (what ``nexus bench local``
    reads)."""

    RESOURCE_KEYS = ("TableName", "StreamName", "StreamARN", "QueueUrl", "FunctionName", "SecretId")
    WRITE_OPERATIONS = ("PutItem", "UpdateItem", "DeleteItem")

    def __init__(self, path: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.path = path
        self.clock = clock
        self.count: Counter[tuple[str, str]] = Counter()
        self.seconds: dict[tuple[str, str], float] = {}
        self.items_written: Counter[str] = Counter()
        self.by_app: Counter[tuple[str, str, str]] = Counter()  # (SDK app id, operation, resource)
        self.written_by_app: Counter[tuple[str, str]] = Counter()  # (SDK app id, table)
        self.write_units: Counter[str] = Counter()
        self.units_by_app: Counter[tuple[str, str]] = Counter()  # (SDK app id, table)
        self._written = self._written_json = clock()

    @classmethod
    def parse(cls, environ: dict[str, Any]) -> tuple[tuple[str, str], bytes, Counter[str], Counter[str]]:
        """The request's (operation, resource), its body, the DynamoDB items it writes per table
        (one for ``PutItem``/``UpdateItem``/``DeleteItem``, each request of a ``BatchWriteItem``,
        each write of a ``TransactWriteItems``) and their write units per table (``write_units``)."""
        operation = environ.get("HTTP_X_AMZ_TARGET", "").rsplit(".", 1)[-1]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        resource = ""
        try:
            document = json.loads(body) if body[:1] == b"{" else {}
        except ValueError:
            document = {}
        for name in cls.RESOURCE_KEYS:
            if name in document:
                resource = str(document[name]).rsplit("/", 1)[-1]
                break
        if not resource and "ShardIterator" in document:
            resource = cls.iterator_source(str(document["ShardIterator"]))
        if not resource:  # a batch or a transaction: the tables it names
            resource = "+".join(sorted(cls.tables_named(document)))
        if not operation:
            operation = f"{environ.get('REQUEST_METHOD', '')} {environ.get('PATH_INFO', '')[:40]}"
        written: Counter[str] = Counter()
        units: Counter[str] = Counter()
        if operation in cls.WRITE_OPERATIONS and resource:
            written[resource] += 1
            units[resource] += write_units(document.get("Item"))
        elif operation == "BatchWriteItem":
            for table, requests in (document.get("RequestItems") or {}).items():
                written[str(table)] += len(requests)
                for request in requests:
                    units[str(table)] += write_units((request.get("PutRequest") or {}).get("Item"))
        elif operation == "TransactWriteItems":
            for item in document.get("TransactItems") or []:
                for kind in ("Put", "Update", "Delete"):
                    if kind in item:
                        written[str(item[kind].get("TableName", ""))] += 1
                        units[str(item[kind].get("TableName", ""))] += 2 * write_units(item[kind].get("Item"))
        return (operation, resource), body, written, units

    @staticmethod
    def tables_named(document: dict[str, Any]) -> set[str]:
        """The tables of a DynamoDB batch (``RequestItems``) or transaction (``TransactItems``)."""
        tables = {str(name) for name in document.get("RequestItems") or {}}
        for item in document.get("TransactItems") or []:
            for request in item.values() if isinstance(item, dict) else ():
                if isinstance(request, dict) and "TableName" in request:
                    tables.add(str(request["TableName"]))
        return tables

    @staticmethod
    def iterator_source(iterator: str) -> str:
        """The stream (or table, for DynamoDB Streams) a shard iterator reads: moto's Kinesis
        iterators are ``stream:shard:sequence`` in base64, its DynamoDB Streams ones an ARN."""
        if "table/" in iterator:
            return iterator.split("table/", 1)[1].split("/", 1)[0]
        try:
            return decompose_shard_iterator(iterator)[0]
        except ValueError:  # not one of moto's: counted without a resource
            return ""

    def add(
        self, key: tuple[str, str], seconds: float, written: Counter[str] | None = None, app: str = "",
        units: Counter[str] | None = None,
    ) -> None:  # fmt: skip
        self.count[key] += 1
        if app:
            self.by_app[(app, *key)] += 1
            for table, n in (written or {}).items():
                self.written_by_app[(app, table)] += n
            for table, n in (units or {}).items():
                self.units_by_app[(app, table)] += n
        self.seconds[key] = self.seconds.get(key, 0.0) + seconds
        if written:
            self.items_written.update(written)
        if units:
            self.write_units.update(units)
        now = self.clock()
        if now - self._written_json >= 1:
            self.write_json()
        if now - self._written > 10:
            self.write()

    def snapshot(self) -> dict[str, Any]:
        """The counters so far, as JSON-ready lists."""
        return {
            "requests": [
                {"operation": op, "resource": res, "count": n, "seconds": round(self.seconds[(op, res)], 6)}
                for (op, res), n in sorted(self.count.items())
            ],
            "items_written": dict(sorted(self.items_written.items())),
            "apps": [
                {"app": app, "operation": op, "resource": res, "count": n}
                for (app, op, res), n in sorted(self.by_app.items())
            ],
            "apps_items_written": [
                {"app": app, "table": table, "count": n} for (app, table), n in sorted(self.written_by_app.items())
            ],
            "write_units": dict(sorted(self.write_units.items())),
            "apps_write_units": [
                {"app": app, "table": table, "count": n} for (app, table), n in sorted(self.units_by_app.items())
            ],
        }

    def write_json(self) -> None:
        self._written_json = self.clock()
        temporary = self.path + ".json.tmp"
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(self.snapshot(), out)
        os.replace(temporary, self.path + ".json")  # readers never see half a document

    def write(self) -> None:
        self._written = self.clock()
        total = sum(self.seconds.values()) or 1.0
        lines = [f"{'seconds':>9} {'share':>6} {'requests':>9}  operation resource"]
        for key, seconds in sorted(self.seconds.items(), key=lambda kv: -kv[1]):
            lines.append(f"{seconds:9.1f} {100 * seconds / total:5.1f}% {self.count[key]:9d}  {key[0]} {key[1]}")
        with open(self.path, "w", encoding="utf-8") as out:
            out.write("\n".join(lines) + "\n")
        self.write_json()


def attribute_size(value: dict[str, Any]) -> int:
    """The size DynamoDB gives an attribute value in its JSON form (``{"S": ...}``, ``{"M": ...}``,
    ...): UTF-8 bytes of strings, about one byte per two digits of a number, 3 bytes and one per
    element for a list or map, the names of a map's members."""
    ((kind, v),) = value.items()
    if kind == "S":
        return len(v.encode())
    if kind == "N":
        digits = v.lstrip("-").replace(".", "").strip("0") or "0"
        return (len(digits) + 1) // 2 + 1
    if kind == "B":
        return len(v) * 3 // 4
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "NS", "BS"):
        return sum(attribute_size({kind[0]: member}) for member in v)
    if kind == "L":
        return 3 + sum(1 + attribute_size(member) for member in v)
    if kind == "M":
        return 3 + sum(len(name.encode()) + 1 + attribute_size(member) for name, member in v.items())
    return 0


def write_units(item: dict[str, Any] | None) -> int:
    """The write units of writing ``item`` (DynamoDB JSON): one per 1 KB of its size, at least 1.
    Without the item (an update, a delete) 1: such a write is billed on the larger of the item's
    sizes before and after, which the request does not show, so this is its floor."""
    if not item:
        return 1
    size = sum(len(name.encode()) + attribute_size(value) for name, value in item.items())
    return max(1, -(-size // 1024))


# A stream read may wait for records (``WAIT_HEADER``, in milliseconds) at most this long
MAX_READ_WAIT_MS: Final = 1000
_WAIT_ENVIRON: Final = "HTTP_" + signing.READ_WAIT_HEADER.upper().replace("-", "_")
_NO_RECORDS = re.compile(rb'"Records"\s*:\s*\[\s*\]')


class StreamChanges:
    """How many records each stream (a Kinesis stream, or a DynamoDB table's stream, by table
    name) has been given, for the reads that wait for records (``_OneAtATime``). Counted as moto
    adds them (``_counted_put_record``, ``_counted_stream_add``), under the server's lock; the
    reads of a stream are woken once the request that added to it has ended, and only those: a
    read waits on its stream's condition, so a write to one table's stream does not wake the
    reads of every other stream (a platform has a score of them waiting at any time)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.conditions: dict[str, threading.Condition] = {}  # per stream, on the one lock
        self.counts: Counter[str] = Counter()
        self.changed: set[str] = set()

    def add(self, stream: str) -> None:
        with self.lock:
            self.counts[stream] += 1
            self.changed.add(stream)

    def count(self, stream: str) -> int:
        return self.counts[stream]

    def wake(self) -> None:
        """Wake the reads waiting on the streams that were added to since the last call."""
        if self.changed:
            with self.lock:
                changed, self.changed = self.changed, set()
                for stream in changed:
                    condition = self.conditions.get(stream)
                    if condition is not None:
                        condition.notify_all()

    def wait(self, stream: str, seen: int, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for the stream to have more than ``seen`` records added."""
        with self.lock:
            condition = self.conditions.get(stream)
            if condition is None:
                condition = self.conditions[stream] = threading.Condition(self.lock)
            return condition.wait_for(lambda: self.counts[stream] != seen, timeout)


STREAM_CHANGES = StreamChanges()


def _counted_put_record(self: Stream, *args: Any, **kwargs: Any) -> Any:
    """moto's ``Stream.put_record`` (each record of a ``PutRecord`` or ``PutRecords``), counted."""
    answer = _uncounted_put_record(self, *args, **kwargs)
    STREAM_CHANGES.add(self.stream_name)
    return answer


_uncounted_put_record = Stream.put_record


def _counted_stream_add(self: StreamShard, old: Any, new: Any) -> None:
    """moto's ``StreamShard.add`` (a change to a table with a stream), counted under the table's name."""
    _uncounted_stream_add(self, old, new)
    STREAM_CHANGES.add(self.table.name)


_uncounted_stream_add = StreamShard.add


class _OneAtATime:
    """WSGI middleware: run the application under one fair lock (see the module docstring).

    A ``GetRecords`` (Kinesis or DynamoDB Streams) that finds no records may wait for some: with
    ``X-Nexus-Wait-Ms: N`` (``signing.READ_WAIT_HEADER``; the local platform's pollers send it to
    the embedded AWS only), it is answered once a record has been added to its stream and it is
    read again, or after N ms
    (at most ``MAX_READ_WAIT_MS``) with no records, as Kinesis answers. It waits outside the
    lock, as an SQS long poll does. A poller then reads an idle shard a few times a second
    instead of 40, and a record is read as soon as it is added instead of at the next poll:
    empty reads were a quarter of the emulator's time under load."""

    def __init__(
        self, app: Any, profile: RequestProfile | None = None, first: str | None = None,
        changes: StreamChanges = STREAM_CHANGES,
    ) -> None:  # fmt: skip
        self.app = app
        self.lock = FairLock()
        self.profile = profile
        self.first = first  # the SDK app id of the clients that go first (also "<first>.<name>")
        self.changes = changes

    def goes_first(self, app_id: str) -> bool:
        return self.first is not None and (app_id == self.first or app_id.startswith(self.first + "."))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        target = environ.get("HTTP_X_AMZ_TARGET", "")
        if target.endswith(".ReceiveMessage"):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        if target.endswith(".GetRecords") and environ.get(_WAIT_ENVIRON):
            return self._read_waiting(environ, start_response)
        try:
            return self._once(environ, start_response)
        finally:
            self.changes.wake()

    def _once(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        app_id = sdk_app_id(environ.get("HTTP_USER_AGENT", ""))
        first = self.goes_first(app_id)
        if self.profile is None:
            with self.lock.hold(first):
                return list(self.app(environ, start_response))
        key, body, written, units = self.profile.parse(environ)
        environ["wsgi.input"] = io.BytesIO(body)
        with self.lock.hold(first):
            started = time.perf_counter()
            answer = list(self.app(environ, start_response))
            self.profile.add(key, time.perf_counter() - started, written, app_id, units)
            return answer

    def _read_waiting(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        """A ``GetRecords`` that may wait for records (see the class docstring)."""
        try:
            wait_ms = min(max(int(environ[_WAIT_ENVIRON]), 0), MAX_READ_WAIT_MS)
        except ValueError:
            wait_ms = 0
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        try:
            iterator = json.loads(body).get("ShardIterator")
        except (ValueError, AttributeError):
            iterator = None
        stream = RequestProfile.iterator_source(iterator) if isinstance(iterator, str) else ""
        deadline = time.monotonic() + wait_ms / 1000
        answered: list[Any] = []  # the last reading's status and headers, given on once it is the answer

        def keep(status: str, headers: Any, exc_info: Any = None) -> Any:
            answered[:] = [status, headers]
            return None

        while True:
            environ["wsgi.input"] = io.BytesIO(body)  # each reading reads the request anew
            seen = self.changes.count(stream)  # before the read: a record added after it wakes the wait
            answer = self._once(environ, keep)
            left = deadline - time.monotonic()
            empty = str(answered[0]).startswith("200") and _NO_RECORDS.search(b"".join(answer))
            if not stream or not empty or left <= 0 or not self.changes.wait(stream, seen, left):
                start_response(*answered)
                return answer


_APP_ID = re.compile(r"(?:^|\s)app/(\S+)")


def sdk_app_id(user_agent: str) -> str:
    """The app id an SDK client puts in its User-Agent (``app/<id>``; botocore's
    ``AWS_SDK_UA_APP_ID``), or ``""``."""
    found = _APP_ID.search(user_agent)
    return found.group(1) if found else ""


class _ServerRequest(MotoRequest):
    """A request as moto's server hands it to a handler (``BackendRequest`` without Flask)."""

    from_wsgi_server = True


_NO_FIELDS: Final = ImmutableMultiDict[str, str]()


class _JsonRequest:
    """A JSON-protocol request posted to ``/`` as moto's handlers read it: the attributes of
    ``_ServerRequest`` that ``BaseResponse.setup_class`` and ``parse_parameters`` read, taken from
    the environ directly.

    werkzeug's request builds each of them through its own machinery (the URL from the host
    header, the body through a stream wrapper, a form parser for a body that is not a form),
    about a fifth of the emulator's time for a ``GetItem``. For these requests the values are
    plain: no query string, no form, no files, the path ``/``, the body as sent (a request with
    a ``Content-Encoding`` takes moto's way, which decompresses it)."""

    from_wsgi_server = True
    method = "POST"
    path = raw_path = "/"
    query_string = b""
    content_encoding = None
    form = values = _NO_FIELDS
    files = _NO_FIELDS

    def __init__(self, environ: dict[str, Any]) -> None:
        self.environ = environ
        self.headers = EnvironHeaders(environ)
        self.content_type = environ.get("CONTENT_TYPE", "")
        length = int(environ.get("CONTENT_LENGTH") or 0)
        self.data = environ["wsgi.input"].read(length) if length > 0 else b""
        # as moto's: werkzeug's URL root (the host validated, the scheme's default port dropped)
        # without its trailing slashes, then the path
        self.raw_url = f"{environ['wsgi.url_scheme']}://{get_host(environ)}/".rstrip("/") + "/"

    @staticmethod
    def fits(environ: dict[str, Any]) -> bool:
        """Whether the request is one this class reads as werkzeug's would be read."""
        return (
            environ.get("REQUEST_METHOD") == "POST"
            and not environ.get("QUERY_STRING")
            and not environ.get("HTTP_CONTENT_ENCODING")
            and not environ.get("HTTP_TRANSFER_ENCODING")
            and not environ.get("SCRIPT_NAME")
            and str(environ.get("RAW_URI", "/")) == "/"
        )


_moto_setup_class = moto_core_responses.BaseResponse.setup_class


def _setup_class(
    self: moto_core_responses.BaseResponse, request: Any, full_url: str | None = None, headers: Any = None,
    use_raw_body: bool | None = None,
) -> None:
    """``BaseResponse.setup_class`` for a ``_JsonRequest`` with a body: the same attributes, each
    set to what moto's code computes for such a request, without the steps that cannot apply
    to it (form fields, uploaded files, a gzip body, a query string in the URL).

    One value differs on purpose: the query string moto reads out of the JSON body
    (``parse_qsl`` of ``{"TableName": ...}`` gives one meaningless name) is not made, so a body
    holding text such as ``&Action=DeleteTable`` cannot choose the operation, which the
    ``X-Amz-Target`` header names. Any other request is moto's."""
    if not isinstance(request, _JsonRequest) or not request.data or use_raw_body or self.use_raw_body:
        return _moto_setup_class(self, request, full_url, headers, use_raw_body)
    full_url = request.raw_url if full_url is None else full_url
    self.is_werkzeug_request = True
    self.normalized_request = request  # type: ignore[assignment]  # read as moto reads its Request
    self.parsed_url = urlparse(full_url)
    self.form_data = request.form
    self.raw_body = request.data
    self.body = request.data.decode("utf-8")
    self.uri = full_url
    self.path = self.parsed_url.path
    self.raw_path = request.raw_path
    self.querystring = self.data = OrderedDict()
    self.method = request.method
    self.region = self.get_region_from_url(request, full_url)
    self.partition = get_partition(self.region)
    self.uri_match = {}
    if "host" not in request.headers:
        request.environ["HTTP_HOST"] = self.parsed_url.netloc
    self.headers = request.headers
    self.response_headers = {"server": "amazon.com"}
    if self.automated_parameter_parsing and self._get_action():
        self.parse_parameters(request)  # type: ignore[arg-type]
    self.access_key = self.get_access_key()
    self.current_account = self.get_current_account()
    mark_account_as_visited(
        account_id=self.current_account, access_key=self.access_key, service=self.service_name,  # type: ignore[arg-type]
        region=self.region,
    )


class _DirectJson:
    """WSGI middleware: requests of the JSON-protocol services on the order path (DynamoDB, its
    streams, Kinesis, SQS) go to moto's handler directly, the rest to ``app``.

    moto's server routes every request through Flask: a request context, URL routing, form
    parsing, CORS headers and a response object, about a third of the time of a ``GetItem``.
    These services' requests name their handler in ``X-Amz-Target``, are signed for its service
    (the credential scope moto's server routes by) and are posted to ``/``, the route moto gives
    that handler alone, so such a request is handed to it as ``convert_to_flask_response`` would
    hand it, and its answer written as Flask would write it. Any other request takes moto's way."""

    HANDLERS: dict[str, tuple[Any, str]] = {  # target prefix: the handler, the service signed for
        "DynamoDB_20120810": (DynamoHandler, "/dynamodb/aws4_request"),
        "DynamoDBStreams_20120810": (DynamoDBStreamsHandler, "/dynamodb/aws4_request"),
        "Kinesis_20131202": (KinesisResponse, "/kinesis/aws4_request"),
        "AmazonSQS": (SQSResponse, "/sqs/aws4_request"),
    }

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        handler, scope = self.HANDLERS.get(environ.get("HTTP_X_AMZ_TARGET", "").partition(".")[0], (None, ""))
        # moto's server picks the service by the credential scope a request is signed for: one
        # unsigned, or signed for another service, goes its way
        if handler is None or environ.get("PATH_INFO") != "/" or scope not in environ.get("HTTP_AUTHORIZATION", ""):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        request: Any
        if _JsonRequest.fits(environ):
            request = _JsonRequest(environ)
        else:
            request = _ServerRequest(environ, populate_request=False)  # no environ -> request cycle
        try:
            answer = handler.dispatch(request, request.raw_url, dict(request.headers))
        except ClientError as exc:  # as convert_to_flask_response answers it
            answer = 400, {}, exc.response["Error"]["Message"]
        status, headers, content = answer if len(answer) == 3 else (200, {}, answer)
        body = content.encode("utf-8") if isinstance(content, str) else bytes(content or b"")
        listed = [("Access-Control-Allow-Origin", "*"), *((str(k), str(v)) for k, v in headers.items())]  # as CORS(app)
        if not any(k.lower() == "content-type" for k, _ in listed):
            listed.append(("Content-Type", "text/html; charset=utf-8"))  # Flask's default
        start_response(f"{int(status)} {HTTP_STATUS_CODES.get(int(status), 'UNKNOWN').upper()}", listed)
        return [body]


def _shard_keys(shard: Shard) -> list[int]:
    """The shard's sequence numbers in order, kept beside it. Records are only ever appended to a
    shard's dict, with growing numbers (resharding gives the shard a new dict), so the list is
    extended with the keys added since the last call."""
    cached: tuple[Any, list[int]] | None = getattr(shard, "_nexus_keys", None)
    if cached is None or cached[0] is not shard.records or len(cached[1]) > len(shard.records):
        cached = (shard.records, list(shard.records.keys()))
        shard._nexus_keys = cached  # type: ignore[attr-defined]
    keys = cached[1]
    missing = len(shard.records) - len(keys)
    if missing:
        added = []
        for key in reversed(shard.records):
            added.append(key)
            if len(added) == missing:
                break
        keys.extend(reversed(added))
    return keys


def _shard_max_sequence_number(self: Shard) -> int:
    """moto's ``Shard.get_max_sequence_number`` without copying the keys."""
    return next(reversed(self.records)) if self.records else 0


def _shard_get_records(self: Shard, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    """moto's ``Shard.get_records`` from the iterator's position on (same results)."""
    last = int(last_sequence_id)
    keys = _shard_keys(self)
    start = bisect.bisect_right(keys, last)
    chosen = keys[start : start + limit] if limit else keys[start:]
    results = [self.records[k] for k in chosen]
    if not results:
        return [], last, 0
    newest = self.records[keys[-1]]
    millis_behind = int((newest.created_at - results[-1].created_at) * 1000)
    return results, chosen[-1], millis_behind


def _get_records_json(self: KinesisResponse) -> tuple[int, dict[str, str], str]:
    """``KinesisResponse.get_records`` answered with ``json.dumps``: the document of moto's
    serializer (``Data`` base64 as put, the arrival time in epoch seconds to the millisecond)."""
    next_iterator, records, millis_behind = self.kinesis_backend.get_records(
        self._get_param("StreamARN"), self._get_param("ShardIterator"), self._get_param("Limit")
    )
    body = {
        "Records": [
            {
                "SequenceNumber": str(record.sequence_number),
                "ApproximateArrivalTimestamp": round(record.created_at, 3),
                "Data": record.data,
                "PartitionKey": record.partition_key,
            }
            for record in records
        ],
        "NextShardIterator": next_iterator,
        "MillisBehindLatest": millis_behind,
    }
    return 200, {"Content-Type": "application/x-amz-json-1.1"}, json.dumps(body)


_DYNAMODB_ITEM_OPERATIONS = frozenset(
    {"GetItem", "PutItem", "UpdateItem", "DeleteItem", "Query", "Scan", "BatchGetItem", "BatchWriteItem",
     "TransactGetItems", "TransactWriteItems"}
)  # fmt: skip
# ... and DynamoDB Streams' GetRecords (the audit trail, notifications and analytics read table streams)
_JSON_OPERATIONS = frozenset(
    {("dynamodb", op) for op in _DYNAMODB_ITEM_OPERATIONS} | {("dynamodbstreams", "GetRecords")}
)
_serializer_execute_result = ActionResult.execute_result
_json_headers: dict[tuple[str, str], dict[str, str]] = {}


def _execute_result_json(self: ActionResult, context: ActionContext) -> Any:
    """``ActionResult.execute_result`` with DynamoDB item operations answered by ``json.dumps``
    (see the module docstring). The first answer of each operation goes through the serializer,
    which gives the headers."""
    result = self.result
    operation = (context.service_model.service_name, context.operation_model.name)
    if (
        type(self) not in (ActionResult, DynamoResult)
        or not isinstance(result, dict)
        or operation not in _JSON_OPERATIONS
        or operation not in _json_headers
    ):
        status, headers, body = _serializer_execute_result(self, context)
        if type(self) in (ActionResult, DynamoResult) and status == 200 and operation in _JSON_OPERATIONS:
            _json_headers.setdefault(operation, dict(headers))
        return status, headers, body
    members = context.operation_model.output_shape.members
    try:
        body = json.dumps({k: v for k, v in result.items() if k in members and v is not None}, default=_json_default)
    except TypeError:  # not plain JSON: the serializer knows what to do
        return _serializer_execute_result(self, context)
    return 200, dict(_json_headers[operation]), body


def _json_default(value: Any) -> float | str:
    """What moto's serializer writes, in the JSON protocols, for a timestamp (seconds since the
    epoch, to the millisecond) and a blob (base64)."""
    if isinstance(value, datetime):  # moto's own conversion (its times are naive UTC)
        return TimestampSerializer._timestamp_unixtimestamp(value)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"{type(value).__name__} is not JSON")


class _VisibleMessages:
    """moto's ``Queue.messages`` (the visible messages that are not delayed, as of one clock read),
    read as far as the reader goes: a receive stops at its tenth message, but moto listed the whole
    queue first, and late in a day the notifications queue held thousands (``len`` counts them
    all, as moto's list did)."""

    __slots__ = ("_messages", "_now")

    def __init__(self, queue: Queue) -> None:
        self._messages = queue._messages
        self._now = unix_time_millis()

    def __iter__(self) -> Iterator[Message]:
        now = self._now
        return (m for m in self._messages if now > m.visible_at and not now < m.delayed_until)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(True for _ in self)


def _queue_delayed(self: Queue) -> int:
    """moto's ``Queue.approximate_number_of_messages_delayed``, with one clock read."""
    now = unix_time_millis()
    return sum(1 for m in self._messages if now < m.delayed_until)


def _queue_not_visible(self: Queue) -> int:
    """moto's ``Queue.approximate_number_of_messages_not_visible``, with one clock read."""
    now = unix_time_millis()
    return sum(1 for m in self._messages if not now > m.visible_at)


def _queue_delete_message(self: Queue, receipt_handle: str) -> None:
    """moto's ``Queue.delete_message`` in one pass over the queue: moto passes over every message
    twice, and builds a list of each message's receipt handles to look the handle up in, for
    every handle of a ``DeleteMessageBatch``. A queue that backed up (a consumer catching up
    late in a day) made each delete dearer as it grew: a ninth of the emulator's time."""
    if receipt_handle in self.deleted_messages:
        return  # deleted before: deleting it again is allowed
    kept: list[Message] = []
    found = False
    for message in self._messages:
        if message.receipt_handle == receipt_handle or receipt_handle in message._old_receipt_handles:
            found = True
            self.pending_messages.discard(message)
            self.deleted_messages.update(message.all_receipt_handles)  # type: ignore[arg-type]
        else:
            kept.append(message)
    if not found:
        raise ReceiptHandleIsInvalid()
    self._messages = kept


_moto_queue_delete_message = Queue.delete_message  # what it replaces (its tests compare the two)


def _delete_message_batch(
    self: SQSBackend, queue_name: str, receipts: list[dict[str, Any]]
) -> tuple[list[str], list[dict[str, str]]]:
    """moto's ``SQSBackend.delete_message_batch`` in one pass over the queue for the whole batch:
    moto deletes the handles one at a time, each a pass over every message. Each handle's outcome
    is the one moto gives (deleted before, or found now: success; else ``ReceiptHandleIsInvalid``),
    and the same messages go: receipt handles are random, so no two messages share one, and a
    handle deletes the message that had it and marks its handles deleted. A notifications queue
    that backed up late in a day made each ``DeleteMessageBatch`` ten passes over thousands of
    messages (37 ms). The pass ends once every handle asked for is found: messages are received
    oldest first, so the ones a batch deletes are near the front (a pass to the end of a backed-up
    queue still cost 5 ms)."""
    queue = self.get_queue(queue_name)
    wanted = {r["ReceiptHandle"] for r in receipts}.difference(queue.deleted_messages)
    messages = queue._messages
    found: set[str] = set()
    gone: list[int] = []  # the positions of the messages deleted, ascending
    for at, message in enumerate(messages if wanted else ()):
        if message.receipt_handle in wanted or not wanted.isdisjoint(message._old_receipt_handles):
            gone.append(at)
            handles = message.all_receipt_handles
            found.update(wanted.intersection(handles))
            queue.pending_messages.discard(message)
            queue.deleted_messages.update(handles)  # type: ignore[arg-type]
            if len(found) == len(wanted):
                break  # every handle asked for is a message's: no other message has one
    if gone:
        kept: list[Message] = []
        start = 0
        for at in gone:
            kept += messages[start:at]
            start = at + 1
        queue._messages = kept + messages[start:]
    success: list[str] = []
    errors: list[dict[str, str]] = []
    for receipt in receipts:
        handle = receipt["ReceiptHandle"]
        if handle in queue.deleted_messages:
            success.append(receipt["Id"])
        else:
            text = f'The input receipt handle "{handle}" is not a valid receipt handle.'
            errors.append({"Id": receipt["Id"], "SenderFault": True,  # type: ignore[dict-item]  # moto's entry
                           "Code": "ReceiptHandleIsInvalid", "Message": text})  # fmt: skip
    return success, errors


_moto_delete_message_batch = SQSBackend.delete_message_batch  # what it replaces (its tests compare the two)


def _within_retention(self: SQSBackend, queue_name: str, message: Message) -> bool:
    """moto's ``SQSBackend.is_message_valid_based_on_retention_period``, reading the queue's
    retention period itself: moto builds every attribute of the queue three times for it (each
    counting the queue's messages), for every message a ``ReceiveMessage`` gives."""
    period = self.get_queue(queue_name).message_retention_period  # type: ignore[attr-defined]
    return bool(period + message.sent_timestamp / 1000 > unix_time())  # type: ignore[operator]


class _QueueAttributes(Mapping[str, Any]):
    """moto's ``Queue.attributes``, each value computed when it is read: the same names, in the
    same order, with the same values. moto builds every attribute, counting the queue's messages
    three times, to read one: ``ContentBasedDeduplication``, for every message sent. A
    notifications queue that backed up late in a day made each ``SendMessageBatch`` cost the
    emulator ten messages' counts of thousands (3 ms, and growing with the queue)."""

    __slots__ = ("_names", "_queue")

    def __init__(self, queue: Queue) -> None:
        self._queue = queue
        names = list(Queue.BASE_ATTRIBUTES)
        if queue.fifo_queue:
            names += Queue.FIFO_ATTRIBUTES
        if queue.kms_master_key_id:  # type: ignore[attr-defined]
            names += Queue.KMS_ATTRIBUTES
        self._names = dict.fromkeys(names)  # moto's dict keeps a name once, in first-set order

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(name)
        queue = self._queue
        if name == "RedrivePolicy" and queue.redrive_policy:
            return json.dumps(queue.redrive_policy)
        value = getattr(queue, _QUEUE_FIELDS[name])
        return str(value).lower() if isinstance(value, bool) else value

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


_QUEUE_FIELDS: Final = {name: camelcase_to_underscores(name)  # each attribute's field, as moto reads it
                        for name in (*Queue.BASE_ATTRIBUTES, *Queue.FIFO_ATTRIBUTES, *Queue.KMS_ATTRIBUTES)}
_moto_queue_attributes = Queue.attributes  # what it replaces (its tests compare the two)

# What ``install_speedups`` puts in place on moto's SQS ``Queue`` (a test puts them in place alone)
QUEUE_SPEEDUPS: Final[dict[str, Any]] = {
    "messages": property(_VisibleMessages),
    "delete_message": _queue_delete_message,
    "attributes": property(_QueueAttributes),
    "approximate_number_of_messages_delayed": property(_queue_delayed),
    "approximate_number_of_messages_not_visible": property(_queue_not_visible),
}


def _json_member_names(shape: Any) -> dict[str, tuple[str, Any]]:
    """A structure shape's members by the name they have in a request's JSON, kept on the shape
    (moto's service models are loaded once)."""
    members: dict[str, tuple[str, Any]] | None = shape.__dict__.get("_nexus_json_members")
    if members is None:
        members = {m.serialization.get("name", name): (name, m) for name, m in shape.members.items()}
        shape._nexus_json_members = members
    return members


def _parse_json_structure(self: BaseJSONParser, shape: Any, value: Any) -> Any:
    """moto's ``BaseJSONParser._parse_structure``, visiting the members the request has instead of
    every member the shape could have: a DynamoDB attribute value is a structure of ten members
    (S, N, B, M, L, ...) that names one, so an item of 20 attributes cost 200 lookups."""
    if shape.is_document_type:
        return value
    if value is None:
        return None
    members = _json_member_names(shape)
    parsed = self.MAP_TYPE()
    for json_name, raw_value in value.items():
        member = members.get(json_name)
        if member is not None and raw_value is not None:
            parsed[member[0]] = self._parse_shape(member[1], raw_value)  # type: ignore[no-untyped-call]
    if len(parsed) > 1:  # in the model's order, as moto's: it reads the first key in places
        parsed = self.MAP_TYPE((name, parsed[name]) for name, _ in members.values() if name in parsed)
    return parsed


_SHAPE_HANDLERS: dict[tuple[type, str], Callable[..., Any]] = {}


def _parse_json_shape(self: BaseJSONParser, shape: Any, node: Any) -> Any:
    """moto's ``RequestParser._parse_shape`` (the handler named after the shape's type), with the
    handler looked up once per parser class and type instead of formatted and looked up per node;
    a DynamoDB attribute value is read by ``_parse_attribute_value``."""
    key = (type(self), shape.type_name)
    handler = _SHAPE_HANDLERS.get(key)
    if handler is None:
        found: Callable[..., Any] = getattr(type(self), f"_parse_{shape.type_name}", type(self)._default_handle)
        if key == (JSONParser, "structure"):
            found = _parse_json_structure_or_attribute_value
        handler = _SHAPE_HANDLERS[key] = found
    return handler(self, shape, node)


# DynamoDB's AttributeValue: its members, their types and their members' types
_ATTRIBUTE_VALUE_SHAPE: Final = {"S": ("string", None), "N": ("string", None), "B": ("blob", None),
                                 "SS": ("list", "string"), "NS": ("list", "string"), "BS": ("list", "blob"),
                                 "M": ("map", "AttributeValue"), "L": ("list", "AttributeValue"),
                                 "NULL": ("boolean", None), "BOOL": ("boolean", None)}  # fmt: skip


def _is_attribute_value(shape: Any) -> bool:
    """Whether ``shape`` is DynamoDB's AttributeValue as ``_parse_attribute_value`` knows it (kept
    on the shape)."""
    known: bool | None = shape.__dict__.get("_nexus_attribute_value")
    if known is None:
        def inner(member: Any) -> str | None:
            if member.type_name == "list":
                return str(member.member.name if member.member.type_name == "structure" else member.member.type_name)
            return str(member.value.name) if member.type_name == "map" and member.key.type_name == "string" else None

        known = (
            shape.name == "AttributeValue" and not shape.is_document_type
            and {name: (m.type_name, inner(m)) for name, m in shape.members.items()} == _ATTRIBUTE_VALUE_SHAPE
            and not any(m.serialization for m in shape.members.values())
        )  # fmt: skip
        shape._nexus_attribute_value = known
    return known


def _parse_json_structure_or_attribute_value(self: BaseJSONParser, shape: Any, value: Any) -> Any:
    if _is_attribute_value(shape):
        return _parse_attribute_value(self, shape, value)
    return _parse_json_structure(self, shape, value)


def _parse_attribute_value(self: BaseJSONParser, shape: Any, value: Any) -> Any:
    """A DynamoDB attribute value as moto's JSON parser reads it, for the one form a request sends
    (one member): a string, number or boolean as it is, a blob decoded, a list's or map's values in
    turn. A node of any other form (no member or several, a member the model does not know, a
    list or map that is not one) goes through ``_parse_json_structure``. The parser visited three
    handlers per value: most of a large item's parse."""
    if type(value) is dict and len(value) == 1:
        for name, raw in value.items():  # noqa: B007 - the one member
            break
        if raw is None:
            return self.MAP_TYPE()  # a null member is dropped
        if name in ("S", "N", "NULL", "BOOL"):
            return self.MAP_TYPE(((name, raw),))
        if name == "M" and type(raw) is dict:
            inner = shape.members["M"].value
            parsed = self.MAP_TYPE((k, _parse_attribute_value(self, inner, v)) for k, v in raw.items())
            return self.MAP_TYPE(((name, parsed),))
        if name == "L" and type(raw) is list:
            inner = shape.members["L"].member
            return self.MAP_TYPE(((name, [_parse_attribute_value(self, inner, v) for v in raw]),))
        if name in ("SS", "NS") and type(raw) is list:
            return self.MAP_TYPE(((name, list(raw)),))
        if name == "B":
            return self.MAP_TYPE(((name, self._blob_parser(raw)),))
        if name == "BS" and type(raw) is list:
            return self.MAP_TYPE(((name, [self._blob_parser(member) for member in raw]),))
    return _parse_json_structure(self, shape, value)


_parse_update_expression = UpdateExpressionParser.make


@functools.lru_cache(maxsize=4096)
def _parsed_update_expression(expression: str) -> Any:
    """moto's parse of an update expression, once per text (errors are not cached: they raise)."""
    return _parse_update_expression(expression)


@functools.cache
def _method_names_from_class(clazz: object) -> list[str]:
    """moto's list of a response class's methods (``inspect.getmembers``, on every request to find
    the action's method), once per class: a class's methods do not change."""
    return _uncached_method_names(clazz)


_uncached_method_names = moto_core_responses.method_names_from_class  # type: ignore[attr-defined]


def _request_id(headerdict: dict[str, Any] | None = None) -> str:
    """A request id as moto writes it (52 upper-case letters and digits), from ``os.urandom``
    instead of 52 calls of ``random.choice``."""
    request_id = base64.b32encode(os.urandom(35)).decode("ascii")[:52]
    if headerdict is not None and isinstance(headerdict, dict):
        headerdict.update({"x-amzn-requestid": request_id})
    return request_id


_XML_REQUEST_ID = re.compile(r"(?<=<RequestId>).*(?=<\/RequestId>)")


def _enrich_response(headers: dict[str, str], body: Any) -> tuple[dict[str, str], Any]:
    """moto's ``BaseResponse._enrich_response``: the status as a string and a request id, also
    written into an XML body's ``RequestId``; the id from ``_request_id``, and a body searched
    only when it is XML text that has a ``RequestId`` (moto ran its pattern over every JSON
    answer, whole shard reads included, and over bytes, where it fails and is ignored)."""
    if "status" in headers:
        headers["status"] = str(headers["status"])
    request_id = _request_id(headers)
    if isinstance(body, str) and "<RequestId>" in body:
        body = _XML_REQUEST_ID.sub(request_id, body)
    return headers, body


_uncached_lex = ConditionExpressionParser._lex_condition_expression
_uncached_condition_parse = ConditionExpressionParser.parse
_CONDITION_TREES_MAX = 1024
_condition_trees: OrderedDict[tuple[Any, ...], Any] = OrderedDict()


def _condition_tree(parser: ConditionExpressionParser) -> Any:
    """moto's ``ConditionExpressionParser.parse`` up to its syntax tree (before the tree becomes
    operations), with every check it makes on the way."""
    nodes = parser._lex_condition_expression()
    nodes = parser._parse_paths(nodes)
    nodes = parser._apply_functions(nodes)
    nodes = parser._apply_comparator(nodes)
    nodes = parser._apply_in(nodes)
    nodes = parser._apply_between(nodes)
    nodes = parser._apply_parens_and_booleans(nodes)
    node = nodes[0]
    parser._assert_no_redundant_parentheses(node)
    return node


def _with_values(node: Any, values: dict[str, Any]) -> Any:
    """The tree with each ``:value`` leaf holding this request's value."""
    if node.kind == ConditionExpressionParser.Kind.EXPRESSION_ATTRIBUTE_VALUE:
        return node._replace(value=values[node.text])
    if not node.children:
        return node
    return node._replace(children=[_with_values(child, values) for child in node.children])


def _parse_condition(self: ConditionExpressionParser) -> Any:
    """moto's ``ConditionExpressionParser.parse``, its syntax tree built once per expression text,
    attribute names and set of value placeholders. The steps that build the tree look at the
    values' names, never at their contents (which only the leaves hold), so a tree is reused with
    this request's values put in its leaves; the operations are made from it as moto makes them.
    A text that fails to parse is parsed (and refused) every time."""
    if not self.condition_expression:
        return _uncached_condition_parse(self)
    names = self.expression_attribute_names or {}
    values = self.expression_attribute_values or {}
    key = (self.condition_expression, tuple(sorted(names.items())), tuple(sorted(values)))
    last = getattr(_last_condition, "parsed", None)
    if last is not None and last[0] == key and last[1] is values:  # the same request's condition, again
        _, _, literals, placeholders, op = last
    else:
        tree = _condition_trees.get(key)
        if tree is None:
            tree = _condition_tree(self)
            _condition_trees[key] = tree
            while len(_condition_trees) > _CONDITION_TREES_MAX:
                _condition_trees.popitem(last=False)
        node = _with_values(tree, values)
        literals, placeholders = self._find_literals(node), self._find_expr_attr_values(node)
        op = self._make_op_condition(node)
        _last_condition.parsed = (key, values, literals, placeholders, op)
    self.expr_attr_names_found.extend(literals)
    self.expr_attr_values_found.extend(placeholders)
    return op


# The last condition a thread parsed, with the values it was given (kept, so no other values can
# be given at their address): moto's write handlers parse a request's condition to check its
# names and values, then its backend parses it again to apply it. The operations are only read.
_last_condition = threading.local()


@functools.lru_cache(maxsize=1024)
def _lexed_condition(expression: str) -> tuple[Any, ...] | None:
    """moto's tokens of a condition expression, once per text; None when they cannot be shared
    (a token with children)."""
    parser = ConditionExpressionParser(expression, None, None)
    nodes = tuple(_uncached_lex(parser))
    return nodes if all(not node.children for node in nodes) else None


def _lex_condition_once(self: ConditionExpressionParser) -> deque[Any]:
    """``ConditionExpressionParser._lex_condition_expression`` from the cache: the tokens depend
    on the text alone and are immutable (named tuples); the parser consumes a fresh deque."""
    nodes = _lexed_condition(self.condition_expression) if self.condition_expression else None
    return deque(nodes) if nodes is not None else _uncached_lex(self)


def _traverse(self: DepthFirstTraverser, root: Any) -> Any:
    """moto's ``DepthFirstTraverser.traverse`` (depth first, each node processed after its
    children, a processed node put in its parent's place), with what a node's class calls for
    (not a node, a node kept as it is, or the first processor whose class it is an instance of)
    worked out once per processor class and node class, instead of by several ``isinstance``
    checks against abstract classes per node: a validation runs ten traversals over the tree,
    and those checks were most of their time."""
    processors = tuple(self._processing_map().values())
    kinds = _node_kinds.get(type(self))
    if kinds is None:
        kinds = _node_kinds[type(self)] = {}
    hook = self.pre_processing_of_child if type(self).pre_processing_of_child is not _no_hook else None

    def visit(node: Any, child_id: int) -> Any:
        kind = kinds.get(type(node))
        if kind is None:
            kind = kinds[type(node)] = _node_kind(self, type(node))
        if kind == _NOT_A_NODE:
            return node
        parent = node.parent
        children = node.children
        if children is not None:
            for i, child in enumerate(children):
                if hook is not None:
                    hook(node, i)
                visit(child, i)
        if kind != _KEPT:
            node = processors[kind](node)
            node.parent = parent
            if parent:
                parent.children[child_id] = node
        return node

    return visit(root, -1)


_NOT_A_NODE, _KEPT = -2, -1
_node_kinds: dict[type, dict[type, int]] = {}  # processor class -> node class -> kind


def _node_kind(processor: DepthFirstTraverser, node_class: type) -> int:
    """What ``processor`` does with a node of ``node_class``: ``_NOT_A_NODE``, ``_KEPT``, or the
    index of its processing function (the first whose class matches, as moto's ``process``).
    A processor's map has the same classes in the same order for every instance."""
    if not issubclass(node_class, Node):
        return _NOT_A_NODE
    if not issubclass(node_class, processor.nodes_to_be_processed()):
        return _KEPT
    return next(i for i, kind in enumerate(processor._processing_map()) if issubclass(node_class, kind))


_no_hook = DepthFirstTraverser.pre_processing_of_child


def _clone_tree(node: Any, parent: Any = None) -> Any:
    """A deep copy of a parsed expression tree (what moto's validator changes as it validates),
    node by node instead of through ``copy.deepcopy``'s generic protocol: each node's attributes
    copied, its children cloned, anything else deep-copied."""
    clone = object.__new__(type(node))
    attributes = {
        name: value if name == "children" or name == "parent" or type(value) in _ATOMIC_TYPES else copy.deepcopy(value)
        for name, value in node.__dict__.items()
    }
    clone.__dict__ = attributes
    attributes["parent"] = parent
    children = node.children
    if children is not None:
        attributes["children"] = [
            _clone_tree(child, clone) if _is_node(type(child)) else copy.deepcopy(child) for child in children
        ]
    return clone


_node_classes: dict[type, bool] = {}


def _is_node(cls: type) -> bool:
    """``isinstance(x, Node)`` by the class of ``x``, once per class (``Node`` is an abstract
    class: each check went through ``ABCMeta.__instancecheck__``)."""
    known = _node_classes.get(cls)
    if known is None:
        known = _node_classes[cls] = issubclass(cls, Node)
    return known


def _validator_deepcopy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """``copy.deepcopy`` as moto's validators module calls it, a whole expression tree (a root: a
    node's copy would copy its parents too) by ``_clone_tree``."""
    if isinstance(value, Node) and value.parent is None:
        return _clone_tree(value)
    return copy.deepcopy(value, memo)


_STATIC_CHECKS = (moto_validators.ActionCountValidator, moto_validators.OverlappingPathsValidator,
                  moto_validators.UpdateHashRangeKeyValidator)  # fmt: skip
_statically_valid: dict[int, tuple[Any, set[Any]]] = {}  # id(parsed expression) -> (it, what passed)


def _validator_init(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
    _validator_init_uncached(self, expression, *args, **kwargs)
    self._nexus_source = expression  # the parsed tree, shared by every update with its text


_validator_init_uncached = moto_validators.Validator.__init__


def _validate_update(self: Any) -> Any:
    """moto's ``UpdateExpressionValidator.validate``, with the checks that depend only on the
    expression, its names and the table's keys (one SET/ADD/REMOVE clause each, no overlapping
    paths, no key attribute updated) run once per such combination: they walk the whole tree
    for every clause node, and were a third of an ``UpdateItem``. The other processors (values,
    the item's attributes, functions, types) run on every update, in moto's order."""
    source = self._nexus_source
    names = self.expression_attribute_names or {}
    static_key = (frozenset(names.items()), tuple(self.table.table_key_attrs))
    entry = _statically_valid.get(id(source))
    if entry is None or entry[0] is not source:  # none yet, or left by a tree that is gone
        if len(_statically_valid) >= 4096:
            _statically_valid.clear()
        entry = _statically_valid[id(source)] = (source, set())
    node = self.node_to_validate
    if static_key not in entry[1]:
        for processor in self.processors:
            if isinstance(processor, _STATIC_CHECKS):
                node = processor.traverse(node)
        entry[1].add(static_key)
    for processor in self.processors:
        if not isinstance(processor, _STATIC_CHECKS):
            node = processor.traverse(node)
    return node


def _dynamo_size(self: DynamoType) -> int:
    """moto's ``DynamoType.size`` in one walk of the value: a set's members measured directly
    instead of each wrapped in a ``DynamoType`` first (an account's set of reservations was
    measured on every attribute an update sets), and a map's values measured as they are (moto
    wraps each in a new ``DynamoType``, which wraps everything under it again: a walk per level
    of nesting, for every audit record of a batch of entries)."""
    kind, value = self.type, self.value
    if kind == "N":
        return len(str(value))
    if kind == "NS":
        return len("".join(map(str, value)))
    if kind == "SS" and all(type(member) is str for member in value):
        return len("".join(value).encode("utf-8"))  # UTF-8 lengths add up: one encoding of them all
    if kind in ("SS", "BS"):
        return sum(bytesize(member) for member in value)
    if kind == "L":
        return sum(element.size() for element in value)
    if kind == "M":
        return sum(bytesize(key) + (v if type(v) is DynamoType else DynamoType(v)).size() for key, v in value.items())
    if isinstance(value, bool):
        return 1
    return bytesize(value)


def _dynamo_init(self: DynamoType, type_as_dict: DynamoType | dict[str, Any]) -> None:
    """moto's ``DynamoType.__init__``, reading the one key of an attribute value without listing
    its keys and values twice (every attribute of every item written or read back is one)."""
    if type(type_as_dict) is DynamoType:
        kind, value = type_as_dict.type, type_as_dict.value
    else:
        if not type_as_dict:
            raise IndexError("list index out of range")  # what moto's list(...)[0] raises
        for kind, value in type_as_dict.items():  # type: ignore[union-attr]  # noqa: B007 - the one key
            break
    self.type = kind
    if kind == "L":
        self.value = [DynamoType(element) for element in value]
    elif kind == "M":
        self.value = {key: DynamoType(v) for key, v in value.items()}
    else:
        self.value = value


# moto's own, as the tests compare them
_moto_dynamo_size, _moto_dynamo_init = DynamoType.size, DynamoType.__init__
_moto_regular_json = DynamoType.to_regular_json

# Values that ``copy.deepcopy`` gives back as they are
_ATOMIC_TYPES = frozenset({str, bytes, bool, int, float, Decimal, type(None)})


def _dynamo_regular_json(self: DynamoType) -> dict[str, Any]:
    """moto's ``DynamoType.to_regular_json`` in one walk: moto deep-copies the whole value, then
    calls itself on each member of the copy, which deep-copies that member's value again (a copy
    per level of nesting). Here each member is converted once; anything that is not an attribute
    value is deep-copied as moto copies it."""
    value = self.value
    if isinstance(value, dict):
        value = {k: v.to_regular_json() if isinstance(v, DynamoType) else copy.deepcopy(v) for k, v in value.items()}
    elif isinstance(value, list):
        value = [v.to_regular_json() if isinstance(v, DynamoType) else copy.deepcopy(v) for v in value]
    elif type(value) not in _ATOMIC_TYPES:
        value = copy.deepcopy(value)
    if self.type == "B" and isinstance(value, str):
        value = base64.b64decode(value)
    return {self.type: value}


ITEM_SIZE_LIMIT = 405000  # moto's LimitedSizeDict: "between 409 and 410KB" measured on DynamoDB


def _attributes_size(attributes: dict[str, DynamoType]) -> int:
    """An item's size as moto's ``LimitedSizeDict`` measures it: each name and value."""
    return sum(bytesize(key) + value.size() for key, value in attributes.items())


def _item_init(self: Item, hash_key: DynamoType, range_key: DynamoType | None, attrs: dict[str, Any]) -> None:
    """moto's ``Item.__init__``, with the item measured once. moto's ``LimitedSizeDict`` measures
    every attribute set so far each time one is set (n² sizes, each a walk of its value: a fifth
    of an audit record's ``PutItem``). Sizes are never negative, so some prefix of the attributes
    passes the limit exactly when all of them do: the same items are refused, with the same error."""
    self.hash_key = hash_key
    self.range_key = range_key
    values = {key: DynamoType(value) for key, value in attrs.items()}
    if _attributes_size(values) > ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    self.attrs = LimitedSizeDict()
    dict.update(self.attrs, values)  # dict's own update: no per-attribute measuring


def _dynamo_cast_value(self: DynamoType) -> Any:
    """moto's ``DynamoType.cast_value``; a set's members cast directly (numbers to ``Decimal``,
    strings and binaries as they are) instead of each wrapped in a ``DynamoType`` first."""
    if self.is_set():
        return {Decimal(member) for member in self.value} if self.type == "NS" else set(self.value)
    return _uncached_cast_value.fget(self)  # type: ignore[attr-defined]


_uncached_cast_value = DynamoType.cast_value


_old_unread: ContextVar[bool] = ContextVar("old_unread", default=False)
_attributes_unread: ContextVar[bool] = ContextVar("attributes_unread", default=False)  # answered without attributes
_change_unstreamed: ContextVar[bool] = ContextVar("change_unstreamed", default=False)


class _CopyWhenRead:
    """The ``copy`` module as moto's DynamoDB responses, backend and tables see it: ``deepcopy`` of
    an item during an ``UpdateItem`` that will not read the copy, or a ``Scan`` of a table that
    only writes its items out (``partitions.SCAN_UNCOPIED``), gives the item itself, or one that
    will not read its attributes either gives ``_UNREAD`` (see ``_update_item``); everything
    else is the ``copy`` module's."""

    def __init__(self, skip: ContextVar[bool], unread: ContextVar[bool] | None = None) -> None:
        self.skip = skip
        self.unread = unread

    def deepcopy(self, value: Any, memo: dict[int, Any] | None = None) -> Any:
        if self.skip.get() and (value is None or type(value) is Item):
            return _UNREAD if value is not None and self.unread is not None and self.unread.get() else value
        return copy.deepcopy(value, memo)

    def __getattr__(self, name: str) -> Any:
        return getattr(copy, name)


class _Unread:
    """An item whose attributes nobody reads: what moto's ``UpdateItem`` handler is given for the
    item before and after an update answered with no attributes (``ReturnValues`` ``NONE``). It
    writes both items out whole (``to_json``) and compares them attribute by attribute, only to
    drop them from the answer."""

    @staticmethod
    def to_json() -> dict[str, Any]:
        return {"Attributes": {}}


_UNREAD: Final = _Unread()


def _update_item(self: DynamoHandler) -> Any:
    """moto's ``UpdateItem``, without its two copies of the item when neither is read. The
    answer's copy of the old item serves only ``ReturnValues`` ``ALL_OLD``, ``UPDATED_OLD`` and
    ``UPDATED_NEW`` (the old attributes it answers with are listed from the item before the
    update either way), and the backend's serves only the table's stream (the old image). Each
    copy walks the whole item: an account's set of reservations made them a third of the
    update."""
    body = self.body
    try:
        streamed = self.dynamodb_backend.get_table(body["TableName"]).stream_shard is not None
    except (KeyError, ResourceNotFoundException):  # no such table, or no name: moto answers as it would
        streamed = True
    bound = _growth_bound(body)
    old_unread = _old_unread.set(body.get("ReturnValues", "NONE") in ("NONE", "ALL_NEW"))
    unread = _attributes_unread.set(body.get("ReturnValues", "NONE") == "NONE")
    unstreamed = _change_unstreamed.set(not streamed)
    growth = _update_growth.set(bound)
    try:
        return _uncopied_update_item(self)
    finally:
        _old_unread.reset(old_unread)
        _attributes_unread.reset(unread)
        _change_unstreamed.reset(unstreamed)
        _update_growth.reset(growth)


def _backend_update_item(self: Any, *args: Any, **kwargs: Any) -> Any:
    """moto's backend ``update_item``; its updated item goes to the handler as ``_UNREAD`` when the
    answer holds no attributes (the stored item is the backend's, as ever)."""
    item = _moto_backend_update_item(self, *args, **kwargs)
    return _UNREAD if _attributes_unread.get() else item


_moto_backend_update_item = moto_dynamodb_models.DynamoDBBackend.update_item


_uncopied_update_item = DynamoHandler.update_item

# Set while moto's PutItem handler runs (``_put_item``)
_put_answer_unread: ContextVar[bool] = ContextVar("put_answer_unread", default=False)


class _NoAttributes:
    """What the backend gives moto's PutItem handler for the item it stored: the handler writes the
    stored item's attributes out (``to_json``) only to replace them with the old item's
    (``ReturnValues`` ``ALL_OLD``, read before the put) or to drop them, so none are written."""

    @staticmethod
    def to_json() -> dict[str, Any]:
        return {}


def _put_item(self: DynamoHandler) -> Any:
    """moto's ``PutItem``, without writing out the stored item for an answer that never holds it
    (``_NoAttributes``): every attribute deep-copied at every level of nesting, a third of an
    audit record's put."""
    unread = _put_answer_unread.set(True)
    try:
        return _answering_put_item(self)
    finally:
        _put_answer_unread.reset(unread)


_answering_put_item = DynamoHandler.put_item


def _backend_put_item(self: Any, *args: Any, **kwargs: Any) -> Any:
    """``DynamoDBBackend.put_item``; to moto's PutItem handler (``_put_item``) it gives
    ``_NoAttributes`` for the item, to every other caller the item."""
    item = _stored_put_item(self, *args, **kwargs)
    return _NoAttributes() if _put_answer_unread.get() else item


_stored_put_item = moto_dynamodb_models.DynamoDBBackend.put_item

# What an UpdateItem may add to an item, for the size check (``_execute_update``): how many actions
# it has at most, and the bytes of its expression, names and values (the sizes they can bring in).
_update_growth: ContextVar[tuple[int, int] | None] = ContextVar("update_growth", default=None)
_size_unchecked: ContextVar[bool] = ContextVar("size_unchecked", default=False)


def _growth_bound(body: dict[str, Any]) -> tuple[int, int] | None:
    """(at most how many actions, at most how many bytes the request brings), or None for an
    update moto must measure as it does: the legacy ``AttributeUpdates``, and any update with a
    nested path (``a.b``, ``l[0]``). A nested set changes an attribute's value in place, and
    moto's values are the item's own objects, not copies: ``SET m1.a = m0, m2.a = m1, ...``
    doubles the item at every step, which no bound on the action count covers."""
    expression = body.get("UpdateExpression")
    if not isinstance(expression, str) or "." in expression or "[" in expression:
        return None
    names = body.get("ExpressionAttributeNames") or {}
    values = body.get("ExpressionAttributeValues") or {}
    # bytes: UTF-8 takes at most 4 per character; the JSON is ASCII (other characters escaped)
    brought = 4 * len(expression) + len(json.dumps([names, values], default=str))
    return expression.count(",") + 4, brought  # actions: one per clause, one more per comma


def _execute_update(self: Any, node: Any = None) -> None:
    """moto's ``UpdateExpressionExecutor.execute``, without measuring the whole item on every
    attribute it sets when no set can reach the item size limit. moto's ``LimitedSizeDict``
    measures every attribute of the item for each one set (n² sizes: a quarter of an order's
    ``UpdateItem``). In an update of top-level attributes only (``_growth_bound``), moto's
    validator resolves every operand before anything is set, so each action sets at most two
    operands' worth, each at most the item plus what the request brings (an ``ADD`` to a set
    grows it in place by at most the request): with k actions the item never passes
    (2k + 4) x (item + request bytes), and when that is within the limit (every update the
    platform makes: its items are a few KB) no check can fail, so none is made. Otherwise (a
    large item, a nested path, the legacy ``AttributeUpdates``) moto checks as it does."""
    growth = _update_growth.get() if node is None else None
    if growth is not None:
        actions, brought = growth
        if (2 * actions + 4) * (_attributes_size(self.item.attrs) + brought) <= ITEM_SIZE_LIMIT:
            unchecked = _size_unchecked.set(True)
            try:
                return _measuring_execute(self, node)
            finally:
                _size_unchecked.reset(unchecked)
    return _measuring_execute(self, node)


_measuring_execute = UpdateExpressionExecutor.execute


def _limited_setitem(self: LimitedSizeDict, key: str, value: Any) -> None:
    """``LimitedSizeDict.__setitem__``, measuring the item unless ``_execute_update`` ruled a
    failure out for the whole update."""
    if _size_unchecked.get():
        dict.__setitem__(self, key, value)
    else:
        _measuring_setitem(self, key, value)


_measuring_setitem = LimitedSizeDict.__setitem__


_moto_project = Item.project


def _item_project(self: Item, projection_expressions: list[list[str]]) -> Item:
    """moto's ``Item.project``, converting only the projected attributes when every path is a
    distinct top-level name (each ``ProjectionExpression`` the platform writes). moto converts
    the whole item to plain values once per path, then keeps the path's attribute: on every
    ``BatchGetItem`` of the risk consumer, an account's 150 reservation ids were converted once per
    name read (3 or more) and each order whole 6 times. Any other projection (a nested path, a
    list element, a name twice) is moto's."""
    names = [path[0] for path in projection_expressions if len(path) == 1 and "[" not in path[0]]
    if len(names) != len(projection_expressions) or len(set(names)) != len(names):
        return _moto_project(self, projection_expressions)
    result = {name: moto_dynamo_type.deserializer.deserialize(self.attrs[name].to_regular_json())
              for name in names if name in self.attrs}  # fmt: skip
    return Item(hash_key=self.hash_key, range_key=self.range_key,
                attrs=moto_dynamo_type.serializer.serialize(result)["M"])  # fmt: skip


def install_speedups() -> None:
    """Patch moto as described in the module docstring (idempotent)."""
    http_headers.install()
    _install_module_cache()
    moto_core_responses.method_names_from_class = _method_names_from_class  # type: ignore[attr-defined]
    aws_headers.gen_amzn_requestid_long = _request_id
    moto_core_responses.BaseResponse._enrich_response = staticmethod(_enrich_response)  # type: ignore[method-assign]
    UpdateExpressionParser.make = _parsed_update_expression
    ConditionExpressionParser._lex_condition_expression = _lex_condition_once  # type: ignore[method-assign]
    ConditionExpressionParser.parse = _parse_condition  # type: ignore[method-assign]
    partitions.install()
    moto_table_module.copy = _CopyWhenRead(partitions.SCAN_UNCOPIED)  # type: ignore[assignment,attr-defined]
    for name, value in QUEUE_SPEEDUPS.items():
        setattr(Queue, name, value)
    ActionResult.execute_result = _execute_result_json  # type: ignore[method-assign]
    Shard.get_records = _shard_get_records  # type: ignore[method-assign]
    Shard.get_max_sequence_number = _shard_max_sequence_number  # type: ignore[method-assign]
    KinesisResponse.get_records = _get_records_json  # type: ignore[method-assign,assignment]
    DepthFirstTraverser.traverse = _traverse
    moto_validators.deepcopy = _validator_deepcopy  # type: ignore[assignment,attr-defined]
    moto_validators.Validator.__init__ = _validator_init  # type: ignore[method-assign]
    moto_validators.UpdateExpressionValidator.validate = _validate_update  # type: ignore[method-assign]
    DynamoType.size = _dynamo_size  # type: ignore[method-assign]
    DynamoType.__init__ = _dynamo_init  # type: ignore[method-assign]
    DynamoType.to_regular_json = _dynamo_regular_json  # type: ignore[method-assign]
    Item.__init__ = _item_init  # type: ignore[method-assign]
    Item.project = _item_project  # type: ignore[method-assign]
    DynamoType.cast_value = property(_dynamo_cast_value)  # type: ignore[method-assign,assignment]
    moto_dynamodb_responses.copy = _CopyWhenRead(_old_unread, _attributes_unread)  # type: ignore[assignment,attr-defined]
    moto_dynamodb_models.DynamoDBBackend.update_item = _backend_update_item  # type: ignore[method-assign]
    moto_dynamodb_models.copy = _CopyWhenRead(_change_unstreamed)  # type: ignore[assignment,attr-defined]
    DynamoHandler.update_item = _update_item  # type: ignore[method-assign]
    moto_core_responses.BaseResponse.setup_class = _setup_class  # type: ignore[method-assign]
    DynamoHandler.put_item = _put_item  # type: ignore[method-assign]
    moto_dynamodb_models.DynamoDBBackend.put_item = _backend_put_item  # type: ignore[method-assign]
    UpdateExpressionExecutor.execute = _execute_update  # type: ignore[method-assign]
    LimitedSizeDict.__setitem__ = _limited_setitem  # type: ignore[method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = _within_retention  # type: ignore[method-assign]
    SQSBackend.delete_message_batch = _delete_message_batch  # type: ignore[method-assign]
    BaseJSONParser._parse_structure = _parse_json_structure  # type: ignore[method-assign]
    BaseJSONParser._parse_shape = _parse_json_shape  # type: ignore[method-assign,assignment]
    Stream.put_record = _counted_put_record  # type: ignore[method-assign]
    StreamShard.add = _counted_stream_add  # type: ignore[method-assign]


class FrozenHeap:
    """A ``gc.callbacks`` entry that keeps full collections to what is new since the last one
    (see the module docstring): after a full collection, what survived it is moved to the
    permanent generation (``gc.freeze``), which no later collection scans. Young collections are
    unchanged.

    The cost: an object frozen while in use that later becomes cyclic garbage stays allocated.
    Requests leave no cycle (``_DirectJson``); what remains is the update expression trees of the
    requests in flight at a full collection (their nodes point at their parents), 3,723 objects
    at the end of a 2,000-order run when 1.16 million were frozen, nearly all of them state the
    emulator keeps for its whole life anyway."""

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info.get("generation") == 2:
            gc.freeze()

    def install(self) -> None:
        if self not in gc.callbacks:
            gc.callbacks.append(self)

    def remove(self) -> None:
        """Stop, and give every frozen object back to the collector."""
        if self in gc.callbacks:
            gc.callbacks.remove(self)
        gc.unfreeze()


_JSON_REQUEST_LINE: Final = b"POST / HTTP/1.1\r\n"
_date: tuple[int, str] = (-1, "")  # the second and the Date header of the last answer


def _http_date() -> str:
    """An answer's ``Date`` header (RFC 7231), formatted once a second instead of once an answer."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True))
    return _date[1]


class _KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1 with keep-alive (see the module docstring). werkzeug's ``run_wsgi`` closes every
    connection, and after each answer reads whatever the socket holds for 10 ms to discard an
    unread body, which on a kept-alive connection would swallow the next request. Here the
    answer (every one is complete before it is sent: ``_OneAtATime`` lists it) goes out with
    its ``Content-Length``, and what the application left of the request body is read to its
    end, so the next request starts at its request line. The connection closes when the
    client asks, or after an application error."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # an answer is one write, but never wait on a delayed ACK
    header_pairs: list[tuple[str, str]] | None = None  # this request's headers, when read as pairs

    def parse_request(self) -> bool:
        """``http.server``'s, for the request line every SDK request to a JSON-protocol service
        sends (``POST / HTTP/1.1``) in fewer steps: the line needs no parsing, and its header
        lines are kept as (name, value) pairs, from which ``make_environ`` makes the environ
        without reading them back through the ``email`` message. Any other line is read by
        ``http.server``."""
        self.header_pairs = None
        if self.raw_requestline != _JSON_REQUEST_LINE:
            return bool(super().parse_request())
        self.requestline, self.command, self.path, self.request_version = "POST / HTTP/1.1", "POST", "/", "HTTP/1.1"
        self.close_connection = False
        try:
            lines = http.client._read_headers(self.rfile)  # type: ignore[attr-defined]
        except http.client.LineTooLong as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Line too long", str(err))
            return False
        except http.client.HTTPException as err:
            self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "Too many headers", str(err))
            return False
        self.header_pairs = pairs = http_headers.header_pairs(lines)
        self.headers = http_headers.message_from(pairs, lines, self.MessageClass)
        connection = self.headers.get("Connection", "").lower()
        if connection == "close":
            self.close_connection = True
        elif connection == "keep-alive":
            self.close_connection = False
        if self.headers.get("Expect", "").lower() == "100-continue":
            return bool(self.handle_expect_100())
        return True

    def make_environ(self) -> dict[str, Any]:
        """werkzeug's environ, made from the header pairs ``parse_request`` kept (a request to
        ``/`` with no query string, over plain HTTP); werkzeug makes any other."""
        pairs = self.header_pairs
        if pairs is None or self.server.ssl_context is not None or not isinstance(self.client_address, tuple) \
                or not self.client_address:
            return super().make_environ()
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": self.rfile,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": self.server.multithread,
            "wsgi.multiprocess": self.server.multiprocess,
            "wsgi.run_once": False,
            "werkzeug.socket": self.connection,
            "SERVER_SOFTWARE": self.server_version,
            "REQUEST_METHOD": "POST",
            "SCRIPT_NAME": "",
            "PATH_INFO": "/",
            "QUERY_STRING": "",
            "REQUEST_URI": "/",
            "RAW_URI": "/",
            "REMOTE_ADDR": self.address_string(),
            "REMOTE_PORT": self.port_integer(),
            "SERVER_NAME": self.server.server_address[0],
            "SERVER_PORT": str(self.server.server_address[1]),
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
        for name, value in pairs:
            if "_" in name:
                continue
            key = name.upper().replace("-", "_")
            value = value.replace("\r\n", "")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = f"HTTP_{key}"
                if key in environ:
                    value = f"{environ[key]},{value}"
            environ[key] = value
        if "HTTP_TRANSFER_ENCODING" in environ:  # a chunked body: werkzeug's dechunking environ
            return super().make_environ()
        return environ

    def run_wsgi(self) -> None:
        if self.headers.get("Expect", "").lower().strip(" \t") == "100-continue":
            self.wfile.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.environ = environ = self.make_environ()
        body_in = environ["wsgi.input"]
        if not environ.get("wsgi.input_terminated"):  # a Content-Length body (a chunked one ends by itself)
            body_in = environ["wsgi.input"] = LimitedStream(body_in, int(environ.get("CONTENT_LENGTH") or 0))
        answer: dict[str, Any] = {"written": []}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[..., None]:
            answer["status"], answer["headers"] = status, headers
            return answer["written"].append  # type: ignore[no-any-return]

        try:
            chunks = self.server.app(environ, start_response)
            try:
                body = b"".join([*answer["written"], *chunks])
            finally:
                if hasattr(chunks, "close"):
                    chunks.close()
            status, headers = answer["status"], answer["headers"]
            while body_in.read(65536):
                pass
        except Exception:  # any application failure is a 500 (logged), and the connection closes
            logging.getLogger(__name__).exception("aws emulation: request failed")
            self.close_connection = True
            status, headers, body = "500 Internal Server Error", [("Content-Type", "text/plain")], b"internal error"
        code, _, reason = status.partition(" ")
        lines = [f"{self.protocol_version} {code} {reason}\r\n",
                 f"Server: {self.version_string()}\r\nDate: {_http_date()}\r\n"]  # fmt: skip
        for key, value in headers:
            if key.lower() not in ("content-length", "connection", "transfer-encoding"):
                lines.append(f"{key}: {value}\r\n")
        lines.append(f"Content-Length: {len(body)}\r\n")
        if self.close_connection:
            lines.append("Connection: close\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1", "strict")
        self.wfile.write(head + body if environ["REQUEST_METHOD"] != "HEAD" else head)  # with the headers, in one write
        self.wfile.flush()

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument(
        "--first",
        metavar="APP_ID",
        help="requests of SDK clients with this app id (User-Agent app/APP_ID) go ahead of the others",
    )
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    install_speedups()
    profile_path = os.environ.get("NEXUS_AWS_PROFILE")
    profile = RequestProfile(profile_path) if profile_path else None
    app = _OneAtATime(_DirectJson(DomainDispatcherApplication(create_backend_app)), profile, args.first)
    server = make_server(args.host, args.port, app, threaded=True, request_handler=_KeepAliveHandler)
    FrozenHeap().install()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    try:
        server.serve_forever()
    finally:
        if app.profile is not None:
            app.profile.write()


if __name__ == "__main__":
    main()
