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
* Reading a Kinesis shard starts at the iterator's position (a binary search over the shard's
  sequence numbers, kept as the shard grows) instead of walking the shard from its first record
  on every ``GetRecords``; putting a record finds the shard's last sequence number in constant
  time instead of copying the shard's keys.
* ``GetRecords`` answers are written as JSON directly (the same document moto's generic
  serializer writes, several times faster): every consumer of a stream reads every record, so
  this is most of the emulator's time under load.
* HTTP/1.1 keep-alive, so boto3's connection pools reuse connections.
* moto's list of its own service modules (read from disk on every request to route it) is read
  once.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import json
import logging
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterable
from types import FrameType
from typing import Any

from moto import backends
from moto.kinesis.models import Shard
from moto.kinesis.responses import KinesisResponse
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server


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


class FairLock:
    """A lock taken in arrival order: each waiter waits on its own lock, which the holder
    releases when it leaves, handing the lock over (``threading.Lock`` is not fair)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Lock] = deque()
        self._held = False

    def __enter__(self) -> FairLock:
        with self._mutex:
            if not self._held:
                self._held = True
                return self
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        turn.acquire()  # released by the holder before us: the lock is ours
        return self

    def __exit__(self, *exc: object) -> None:
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()
            else:
                self._held = False


class _OneAtATime:
    """WSGI middleware: run the application under one fair lock (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = FairLock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").endswith(".ReceiveMessage"):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        with self.lock:
            return list(self.app(environ, start_response))


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


def install_speedups() -> None:
    """Patch moto as described in the module docstring (idempotent)."""
    _install_module_cache()
    Shard.get_records = _shard_get_records  # type: ignore[method-assign]
    Shard.get_max_sequence_number = _shard_max_sequence_number  # type: ignore[method-assign]
    KinesisResponse.get_records = _get_records_json  # type: ignore[method-assign,assignment]


class _KeepAliveHandler(WSGIRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    args = parser.parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    install_speedups()
    app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=_KeepAliveHandler)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    server.serve_forever()


if __name__ == "__main__":
    main()
