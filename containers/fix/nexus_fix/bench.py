"""Session-layer figures of ``nexus bench fix`` (printed, nothing asserted):

1. codec: parse + validate of a mix of FIX 4.4 messages (NewOrderSingle, ExecutionReport,
   OrderCancelRequest, Heartbeat), messages/s on one core (one thread, gc frozen, best of
   ``repeat``), and QuickFIX/C++'s own codec on the same frames, ``quickfix.Message(str, dd,
   True)`` (parse + validate against FIX44.xml), as the peer figure;
2. TestRequest -> Heartbeat round trip over loopback: the acceptor (in-memory store) on this
   process's event loop, a blocking-socket client in a process of its own, p50/p99/max of
   ``count`` round trips after a warm-up.
"""

from __future__ import annotations

import asyncio
import gc
import multiprocessing
import socket
import statistics
import sysconfig
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nexus_fix import codec
from nexus_fix.acceptor import Acceptor
from nexus_fix.codec import Message
from nexus_fix.session import SessionConfig
from nexus_fix.store import MemoryStore

ACCEPTOR = "NEXUS"
CLIENT = "BENCH"


def corpus(now: datetime) -> list[bytes]:
    """A day's typical mix: orders in, reports out, cancels, heartbeats."""
    ts = codec.utc_timestamp(now)
    head = ((49, CLIENT), (56, ACCEPTOR), (34, 1234), (52, ts))
    order = Message.new("D", *head, (11, "ORD-000123"), (1, "ACC-1"), (55, "AAPL"), (54, "1"), (60, ts),
                        (38, "100"), (40, "2"), (44, "150.25"), (59, "0"))
    report = Message.new("8", *head, (37, "O-1"), (11, "ORD-000123"), (17, "E-1"), (150, "F"), (39, "1"),
                         (55, "AAPL"), (54, "1"), (38, "100"), (32, "40"), (31, "150.25"), (151, "60"),
                         (14, "40"), (6, "150.25"), (60, ts))
    cancel = Message.new("F", *head, (41, "ORD-000123"), (11, "ORD-000124"), (55, "AAPL"), (54, "1"), (60, ts),
                         (38, "100"))
    heartbeat = Message.new("0", *head)
    return [order.encode(), report.encode(), order.encode(), cancel.encode(), heartbeat.encode()]


@dataclass(frozen=True)
class Rate:
    wall: float  # messages per second of elapsed time, best run
    cpu: float  # messages per second of this thread's CPU time, best run (less sensitive to a busy machine)


def _rate(fn: Callable[[Any], object], frames: list[Any], count: int, repeat: int) -> Rate:
    batch = (frames * (count // len(frames) + 1))[:count]
    wall = cpu = 0.0
    gc.collect()
    gc.freeze()
    try:
        for _ in range(repeat):
            start, start_cpu = time.perf_counter(), time.thread_time()
            for raw in batch:
                fn(raw)
            wall = max(wall, count / (time.perf_counter() - start))
            cpu = max(cpu, count / max(time.thread_time() - start_cpu, 1e-9))
    finally:
        gc.unfreeze()
    return Rate(wall, cpu)


def codec_rate(count: int = 200_000, repeat: int = 3, cached: bool = True) -> Rate:
    """Our parse + validate, messages/s. ``cached=False``: every message as one whose tag layout
    was never seen (parse's layout cache emptied, no validation plan looked up or kept)."""
    layouts = codec._LAYOUTS

    def decode(raw: bytes) -> None:
        codec.validate(codec.parse(raw))

    def decode_cold(raw: bytes) -> None:
        layouts.clear()
        msg = codec.parse(raw)
        msg._shape = None
        codec.validate(msg)

    frames = corpus(datetime.now(UTC))
    for raw in frames:
        decode(raw)  # every frame of the mix is valid
    return _rate(decode if cached else decode_cold, frames, count, repeat)


def quickfix_rate(count: int = 200_000, repeat: int = 3) -> Rate | None:
    """QuickFIX/C++'s parse + validate of the same frames through its Python binding, or None
    when ``quickfix`` is not installed."""
    try:
        import quickfix
    except ImportError:
        return None
    xml = Path(sysconfig.get_paths()["data"]) / "share" / "quickfix" / "FIX44.xml"
    dd = quickfix.DataDictionary(str(xml))
    texts = [raw.decode("latin-1") for raw in corpus(datetime.now(UTC))]

    def decode(text: Any) -> None:
        quickfix.Message(text, dd, True)

    for text in texts:
        decode(text)
    return _rate(decode, texts, count, repeat)


@dataclass(frozen=True)
class RoundTrips:
    count: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float


class _Sessions:
    def __init__(self, config: SessionConfig) -> None:
        self.config = config

    def get(self, sender: str, target: str) -> SessionConfig | None:
        return self.config if (sender, target) == (ACCEPTOR, CLIENT) else None


class _NoApp:
    async def on_logon(self, session: Any) -> None:
        return None

    async def on_logout(self, session: Any) -> None:
        return None

    async def on_message(self, session: Any, message: Message) -> None:
        return None


def _client(port: int, count: int, warmup: int) -> list[float]:
    """The counterparty, in its own process: log on, then TestRequest after TestRequest, each
    timed from its send to the arrival of the Heartbeat carrying its TestReqID (ms)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    seq = 1

    def frame(msg_type: str, *fields: tuple[int, object]) -> bytes:
        nonlocal seq
        msg = Message.new(msg_type, (49, CLIENT), (56, ACCEPTOR), (34, seq),
                          (52, codec.utc_timestamp(datetime.now(UTC))), *fields)
        seq += 1
        return msg.encode()

    def wait_for(marker: bytes, buffer: bytearray) -> None:
        while marker not in buffer:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("the acceptor closed the connection")
            buffer += data

    latencies: list[float] = []
    try:
        buffer = bytearray()
        sock.sendall(frame("A", (98, "0"), (108, 30)))
        wait_for(b"\x0135=A\x01", buffer)
        for i in range(warmup + count):
            request = frame("1", (112, f"T{i}"))
            marker = f"\x01112=T{i}\x01".encode()
            buffer.clear()
            start = time.perf_counter_ns()
            sock.sendall(request)
            wait_for(marker, buffer)
            if i >= warmup:
                latencies.append((time.perf_counter_ns() - start) / 1e6)
        sock.sendall(frame("5"))
    finally:
        sock.close()
    return latencies


def round_trip(count: int = 5_000, warmup: int = 500) -> RoundTrips:
    """TestRequest -> Heartbeat over loopback: the acceptor on this process's event loop, the
    client in a process of its own (no shared interpreter lock between them)."""

    async def measure() -> list[float]:
        acceptor = Acceptor(_Sessions(SessionConfig(ACCEPTOR, CLIENT)), MemoryStore(), _NoApp(), port=0)
        await acceptor.start()
        try:
            with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
                return await asyncio.get_running_loop().run_in_executor(pool, _client, acceptor.port, count, warmup)
        finally:
            await acceptor.stop()

    ordered = sorted(asyncio.run(measure()))
    return RoundTrips(
        count=len(ordered),
        p50_ms=ordered[len(ordered) // 2],
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
        max_ms=ordered[-1],
        mean_ms=statistics.fmean(ordered),
    )


def report(count: int = 200_000, round_trips: int = 5_000, repeat: int = 3) -> list[str]:
    """The session-layer figures as lines to print."""
    ours = codec_rate(count, repeat)
    peer = quickfix_rate(count, repeat)
    lines = [
        "FIX session layer:",
        f"  codec parse+validate  {ours.wall:12,.0f} msgs/s  ({ours.cpu:,.0f} per CPU-second; one core, "
        f"mix of D, 8, F, 0; best of {repeat} x {count:,})",
    ]
    cold = codec_rate(count // 4, repeat, cached=False)
    lines.append(
        f"    (every tag layout as if never seen, no cache: {cold.wall:,.0f} msgs/s, "
        f"{cold.cpu:,.0f} per CPU-second)"
    )
    if peer is None:
        lines.append("  QuickFIX codec        (quickfix not installed: pip install -e '.[test]')")
    else:
        lines.append(
            f"  QuickFIX codec        {peer.wall:12,.0f} msgs/s  ({peer.cpu:,.0f} per CPU-second; "
            f"quickfix.Message(str, dd, True), same frames; ours = {ours.cpu / peer.cpu:.2f} x QuickFIX)"
        )
    rt = round_trip(round_trips)
    lines.append(
        f"  TestRequest->Heartbeat over loopback: p50 {rt.p50_ms:.3f} ms  p99 {rt.p99_ms:.3f} ms  "
        f"max {rt.max_ms:.3f} ms  ({rt.count:,} round trips, target p99 <= 2 ms)"
    )
    return lines


if __name__ == "__main__":
    for line in report():
        print(line)
