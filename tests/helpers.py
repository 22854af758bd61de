"""Helpers shared by tests (importable as ``helpers``: pytest puts ``tests/`` on the path)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


def eventually(probe: Callable[[], T], done: Callable[[T], bool], timeout: float = 30.0) -> T:
    """Poll ``probe`` until ``done(value)``; returns the last value (the test asserts on it).

    For outcomes that arrive asynchronously (streams, queues): the test never asserts on time,
    only waits for the outcome up to a generous bound."""
    deadline = time.monotonic() + timeout
    value = probe()
    while not done(value) and time.monotonic() < deadline:
        time.sleep(0.1)
        value = probe()
    return value


def commands_sent(platform: Any) -> int:
    """Records ever put on a running platform's order-commands stream (every shard, from the start)."""
    import boto3

    kinesis = boto3.client("kinesis", endpoint_url=platform.aws_endpoint, region_name="us-east-1")
    stream = platform.table("OrderCommandsStream")
    total = 0
    for shard in kinesis.list_shards(StreamName=stream)["Shards"]:
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]  # fmt: skip
        while iterator:
            page = kinesis.get_records(ShardIterator=iterator, Limit=10000)
            total += len(page["Records"])
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return total


@contextlib.contextmanager
def embedded_aws(env: dict[str, str] | None = None) -> Iterator[str]:
    """The embedded AWS (``nexus.local.aws_server``) in a process of its own, from when it answers
    until the block ends: its endpoint."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    from nexus.local.runtime import free_port

    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "nexus.local.aws_server", "--port", str(port)],
                               env={**os.environ, **(env or {})})  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    kinesis = boto3.client("kinesis", endpoint_url=endpoint, region_name="us-east-1",
                           aws_access_key_id="test", aws_secret_access_key="test")  # fmt: skip

    def up() -> bool:
        try:
            kinesis.list_streams()
        except (BotoCoreError, ClientError):  # not answering yet
            return False
        return True

    try:
        eventually(up, bool, timeout=30)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)
