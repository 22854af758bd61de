"""``nexus up`` as a user runs it: a process that brings every component up, logs a line for
each, serves the API, and on Ctrl-C or SIGTERM stops within 10 seconds leaving no child behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from nexus.local.runtime import free_port

pytestmark = pytest.mark.system


def _children(pid: int) -> set[int]:
    """Every process whose parent is ``pid``, and theirs, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_nexus_up_serves_and_stops_cleanly(tmp_path: Path, stop_signal: signal.Signals) -> None:
    # GIVEN `nexus up --demo` started as a user would
    port, aws_port, ws_port = free_port(), free_port(), free_port()
    env = {**os.environ, "NEXUS_STATE_DIR": str(tmp_path)}
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("REDIS_URL", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "nexus.cli", "up", "--demo", "--port", str(port), "--aws-port", str(aws_port),
         "--ws-port", str(ws_port)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "runtime.json").exists() and time.monotonic() < deadline and process.poll() is None:
            time.sleep(0.1)
        assert (tmp_path / "runtime.json").exists(), "nexus up did not come up"
        state = json.loads((tmp_path / "runtime.json").read_text())
        # THEN it serves the API on the port asked for, and the demo accounts exist
        assert state["api_url"] == f"http://127.0.0.1:{port}"
        with urllib.request.urlopen(state["api_url"] + "/health", timeout=10) as answer:  # noqa: S310 - loopback
            assert answer.status == 200
        demo = json.loads((tmp_path / "demo-accounts.json").read_text())
        assert len(demo) == 2
        assert (tmp_path / "demo-accounts.json").stat().st_mode & 0o077 == 0  # the owner's alone
        children = _children(process.pid)
        assert len(children) >= 4  # moto server, redis, the engine, the function workers
        # WHEN it is told to stop
        started = time.monotonic()
        process.send_signal(stop_signal)
        output, _ = process.communicate(timeout=15)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
    # THEN it stopped within 10 seconds, with every child gone
    assert process.returncode == 0, output
    assert took < 10, f"stopping took {took:.1f} s"
    assert [pid for pid in children if _alive(pid)] == []
    # AND it logged one line per component as it came up, and the URLs
    for component in ("aws ", "redis ", "template ", "demo ", "lambda ", "events ", "container matching", "api "):
        assert component in output, f"no line for {component!r} in:\n{output}"
    assert f"API  http://127.0.0.1:{port}" in output
    # AND it named the demo accounts and the file with their keys, never a key itself
    assert all(account["account_id"] in output and account["api_key"] not in output for account in demo)
    assert f"API keys in {tmp_path / 'demo-accounts.json'}" in output
    assert not (tmp_path / "runtime.json").exists()
