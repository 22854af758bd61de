"""Child processes of the local runtime: each in its own session (a Ctrl-C reaches only the
runtime, which then stops children in order) and each told by the kernel to exit when the
runtime dies, however it dies (``PR_SET_PDEATHSIG``, or end-of-file on its request pipe), so
none is ever left behind."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
from typing import Any

_PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def spawn(
    args: list[str], env: dict[str, str], *, die_with_parent: bool = True, **kwargs: Any
) -> subprocess.Popen[Any]:
    """Start a child in its own session.

    ``die_with_parent`` asks the kernel for SIGTERM when the spawning *thread* exits, so use it
    only from a long-lived thread; a child that reads its requests from a pipe (a Lambda worker)
    needs no such help: it ends at end-of-file when the runtime dies."""
    preexec = _die_with_parent if die_with_parent else None
    return subprocess.Popen(args, env=env, start_new_session=True, preexec_fn=preexec, **kwargs)


def stop_process(process: subprocess.Popen[Any] | None, timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds (at once when ``timeout`` is 0)."""
    if process is None or process.poll() is not None:
        return
    if timeout <= 0:
        process.kill()
        process.wait(timeout=5)
        return
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
