"""The embedded AWS: moto's server application, served for speed.

``python -m nexus.local.aws_server --host H --port P`` serves the same WSGI application as
``moto_server``, with changes that matter when every Lambda and the engine talk to it at once:

* Requests are applied one at a time (HTTP parsing and I/O still overlap). moto's backends are
  not written for concurrent requests: two threads putting Kinesis records can be given the
  same sequence number (one record is lost), and two conditional DynamoDB writes to one key can
  both succeed. AWS makes each of those atomic, and so must the emulation. SQS long polls are
  the exception: moto waits inside them, so they run beside the others.
* Reading a Kinesis shard starts at the iterator's position (a binary search) instead of
  walking the shard from its first record on every ``GetRecords``.
* HTTP/1.1 keep-alive, so boto3's connection pools reuse connections.
* moto's list of its own service modules (read from disk on every request to route it) is read
  once.
"""

from __future__ import annotations

import argparse
import bisect
import functools
import logging
import signal
import sys
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

from moto import backends
from moto.kinesis.models import Shard
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


class _OneAtATime:
    """WSGI middleware: run the application under one lock (see the module docstring)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if environ.get("HTTP_X_AMZ_TARGET", "").endswith(".ReceiveMessage"):
            return self.app(environ, start_response)  # type: ignore[no-any-return]
        with self.lock:
            return list(self.app(environ, start_response))


def _shard_get_records(self: Shard, last_sequence_id: str, limit: int | None) -> tuple[list[Any], int, int]:
    """moto's ``Shard.get_records`` from the iterator's position on (same results)."""
    last = int(last_sequence_id)
    keys = list(self.records.keys())
    start = bisect.bisect_right(keys, last)
    chosen = keys[start : start + limit] if limit else keys[start:]
    results = [self.records[k] for k in chosen]
    if not results:
        return [], last, 0
    newest = self.records[keys[-1]]
    millis_behind = int((newest.created_at - results[-1].created_at) * 1000)
    return results, chosen[-1], millis_behind


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
    _install_module_cache()
    Shard.get_records = _shard_get_records  # type: ignore[method-assign]
    app = _OneAtATime(DomainDispatcherApplication(create_backend_app))
    server = make_server(args.host, args.port, app, threaded=True, request_handler=_KeepAliveHandler)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_signal)
    server.serve_forever()


if __name__ == "__main__":
    main()
