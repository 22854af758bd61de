"""``nexus bench fix`` (order figures): the FIX gateway on the local platform, driven by QuickFIX.

Starts ``nexus up --demo`` as its own process (free ports, its own state folder), adds accounts
and FIX sessions, and runs:

1. one session sending ``rate`` NewOrderSingle per second for ``seconds``: how many were sent,
   acknowledged (ExecutionReport New or Rejected) and not acknowledged when the bench stops
   waiting (no report for 20 s, or 600 s after the last send; still queued, not dropped),
   NewOrderSingle -> ExecutionReport(New) latency p50/p99/max, from QuickFIX's send call to
   QuickFIX handing over the report (both in this process), and the same for Pending New (the
   gateway's own order entry, before the engine);
2. ``sessions`` concurrent sessions sharing the same total rate (``rate / sessions`` each).

Each run has a platform of its own: orders a run leaves queued (more than the platform enters
while the bench waits) would otherwise be ahead of the next run's. Each run also gives the CPU
its platform's processes used from the first send to the end of the wait, per order acknowledged,
by process.

Orders rest (buys 5 % under, sells 5 % over each demo symbol's last trade, one share each), so the figures
are order entry and reports, not matching; a session acts for as many accounts as keep each under its
open-order limit (``ACCOUNT_ORDERS``), its orders in turn. Nothing is asserted: figures are printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from nexus import platform as target_platform
from nexus.bench_local import read_cpu
from nexus.fix_client import FixClient, Received
from nexus.local.procs import spawn, stop_process
from nexus.local.runtime import free_port, read_state, wait_until

SYMBOLS = ("AAPL", "MSFT", "GOOGL", "AMZN")
SESSION_ENDS = {"3": "Reject", "5": "Logout"}  # session messages that say why reports may stop coming
DRAIN_SECONDS = 600.0  # after the last send, wait for reports at most this long ...
STALL_SECONDS = 20.0  # ... and stop earlier when none has come for this long
# Resting orders the bench leaves on one account at most: every order rests, and an account may hold
# RISK_MAX_OPEN_ORDERS (4,000) open orders; a session acts for as many accounts as its orders need.
ACCOUNT_ORDERS = 2500


@dataclass(frozen=True)
class RunFigures:
    sessions: int
    rate: int  # per second, all sessions together
    seconds: int
    sent: int
    send_seconds: float
    acknowledged: int
    new: int
    rejected: int
    lost: int
    ack_seconds: float  # first send to last acknowledgement
    latencies_ms: tuple[float, ...]
    pending_new: int = 0  # orders the gateway entered (ExecutionReport Pending New)
    pending_ms: tuple[float, ...] = ()  # NewOrderSingle -> ExecutionReport(Pending New)
    reject_reasons: tuple[tuple[str, int], ...] = ()  # Text (58) of the rejections, most frequent first
    load: tuple[float, float] = (0.0, 0.0)  # the machine's 1-minute load average before and after
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds of the platform's processes, by role
    # the gateway's Rejects (3) and Logouts (5) during the run: ("Logout: <text>", how many), most first
    session_ends: tuple[tuple[str, int], ...] = ()

    def percentile(self, p: float, of: tuple[float, ...] | None = None) -> float:
        values = self.latencies_ms if of is None else of
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


@dataclass(frozen=True)
class FixBenchResult:
    runs: tuple[RunFigures, ...]


class BenchPlatform:
    """``nexus up --demo`` in a child process, with the FIX gateway on a free port."""

    def __init__(self, stage: str = "benchfix") -> None:
        self.stage = stage
        self.state = Path(tempfile.mkdtemp(prefix=f"nexus-{stage}-"))
        self.fix_port = free_port()
        env = {**os.environ, "NEXUS_STATE_DIR": str(self.state)}
        for key in ("AWS_ENDPOINT_URL", "REDIS_URL"):
            env.pop(key, None)
        ports = ["--port", str(free_port()), "--aws-port", str(free_port()), "--ws-port", str(free_port())]
        command = [sys.executable, "-m", "nexus.cli", "up", "--demo", "--stage", stage, *ports,
                   "--fix-port", str(self.fix_port)]  # fmt: skip
        self.process = spawn(command, env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: bool(read_state(self.state)), 180, "nexus up")
        self.runtime = read_state(self.state)

    def add_sessions(self, count: int, accounts_each: int = 1) -> list[dict[str, Any]]:
        """``count`` FIX sessions (each with its password), each acting for ``accounts_each``
        funded accounts of its own."""
        import secrets

        from nexus_fix.sessions import DynamoSessions, new_session

        from nexus.local.demo import create_account

        table = target_platform.tables(target_platform.use(target_platform.local_target(self.runtime)))
        sessions = DynamoSessions(table("FixSessionsTable"))
        created = []
        for n in range(count):
            accounts = [create_account(table, f"fixbench{n}-{a}", Decimal("10000000.00"))["account_id"]
                        for a in range(accounts_each)]  # fmt: skip
            password = secrets.token_urlsafe(18)
            sender = f"BENCH{n}"
            sessions.add(new_session(sender, "NEXUS", accounts, password, {"MaxHeartBtInt": "300"}))
            created.append({"sender": sender, "password": password, "accounts": accounts})
        return created

    def stop(self) -> None:
        """Stop the platform and remove its state folder (its demo keys and session passwords)."""
        stop_process(self.process, 20)
        shutil.rmtree(self.state, ignore_errors=True)


def _clients(platform: BenchPlatform, sessions: list[dict[str, Any]]) -> list[FixClient]:
    clients = []
    for session in sessions:
        client = FixClient("127.0.0.1", platform.fix_port, session["sender"], "NEXUS",
                           Path(tempfile.mkdtemp(prefix="fixbench-")), password=session["password"])  # fmt: skip
        client.start()
        clients.append(client)
    for client in clients:
        client.wait_logon(60)
    return clients


Prices = dict[str, tuple[str, str]]  # symbol -> (resting buy price, resting sell price)


def resting_prices(platform: BenchPlatform) -> Prices:
    """Per symbol, a buy 5 % under and a sell 5 % over its last trade (inside the pre-trade
    collar of 10 %; other processes, the market maker, trade on the platform too), or 95/105
    before any trade."""
    import urllib.request
    from decimal import ROUND_CEILING, ROUND_FLOOR

    key = json.loads((platform.state / "demo-accounts.json").read_text())[0]["api_key"]
    prices: Prices = {}
    cent = Decimal("0.01")
    for symbol in SYMBOLS:
        request = urllib.request.Request(f"{platform.runtime['api_url']}/v1/markets/{symbol}/trades?limit=1")  # noqa: S310
        request.add_header("Authorization", f"Bearer {key}")
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310 - loopback
            trades = json.loads(answer.read()).get("trades") or []
        last = Decimal(str(trades[0]["price"])) if trades else Decimal(100)
        buy = (last * Decimal("0.95")).quantize(cent, ROUND_CEILING)
        sell = (last * Decimal("1.05")).quantize(cent, ROUND_FLOOR)
        prices[symbol] = (str(buy), str(sell))
    return prices


def _send(client: FixClient, accounts: list[str], prefix: str, rate: float, count: int, sent: dict[str, float],
          prices: Prices) -> None:  # fmt: skip
    started = time.perf_counter()
    for i in range(count):
        due = started + i / rate
        pause = due - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        symbol = SYMBOLS[(i // 2) % len(SYMBOLS)]
        side, price = ("1", prices[symbol][0]) if i % 2 == 0 else ("2", prices[symbol][1])
        cl = f"{prefix}-{i}"
        sent[cl] = client.new_order(cl, symbol, side, "1", "2", price, t59="1", t1=accounts[i % len(accounts)])


def _run(clients: list[FixClient], accounts: list[list[str]], rate: int, seconds: int, label: str, prices: Prices,
         root: int) -> RunFigures:  # fmt: skip
    """Send ``rate`` orders a second for ``seconds`` over ``clients`` (each for its ``accounts``,
    in turn) and wait for their reports; ``root``: the platform's process, whose process tree's
    CPU is counted."""
    per_session = rate / len(clients)
    count = int(per_session * seconds)
    sent: list[dict[str, float]] = [{} for _ in clients]
    marks = [len(c.received) for c in clients]
    admin_marks = [len(c.admin) for c in clients]
    load_before = os.getloadavg()[0]
    cpu_before = read_cpu(root)
    threads = [threading.Thread(target=_send, args=(c, accounts[n], f"{label}{n}", per_session, count, sent[n], prices))
               for n, c in enumerate(clients)]  # fmt: skip
    first = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    send_seconds = time.perf_counter() - first
    total = sum(len(s) for s in sent)

    def acks() -> dict[str, Received]:
        found: dict[str, Received] = {}
        for client, mark in zip(clients, marks, strict=True):
            for message in client.received[mark:]:
                cl = message.get(11) or ""
                if message.get(150) in ("0", "8") and cl not in found:
                    found[cl] = message
        return found

    deadline = time.monotonic() + DRAIN_SECONDS
    seen, progress = 0, time.monotonic()
    while seen < total and time.monotonic() < deadline and time.monotonic() - progress < STALL_SECONDS:
        time.sleep(0.5)
        now_seen = len(acks())
        if now_seen > seen:
            seen, progress = now_seen, time.monotonic()
    got = acks()
    cpu = read_cpu(root).minus(cpu_before)
    ends = Counter(f"{SESSION_ENDS[m.get(35) or '']}: {m.get(58) or ''}"
                   for client, mark in zip(clients, admin_marks, strict=True)
                   for m in client.admin[mark:] if m.get(35) in SESSION_ENDS)  # fmt: skip
    sent_at = {cl: at for s in sent for cl, at in s.items()}
    pending: dict[str, float] = {}
    for client, mark in zip(clients, marks, strict=True):
        for message in client.received[mark:]:
            cl = message.get(11) or ""
            if message.get(150) == "A" and cl in sent_at and cl not in pending:
                pending[cl] = (message.at - sent_at[cl]) * 1000
    latencies = tuple((m.at - sent_at[cl]) * 1000 for cl, m in got.items() if m.get(150) == "0" and cl in sent_at)
    last = max((m.at for m in got.values()), default=first)
    return RunFigures(
        sessions=len(clients), rate=rate, seconds=seconds, sent=total, send_seconds=send_seconds,
        acknowledged=len(got), new=sum(1 for m in got.values() if m.get(150) == "0"),
        rejected=sum(1 for m in got.values() if m.get(150) == "8"), lost=total - len(got),
        ack_seconds=last - first, latencies_ms=latencies, pending_new=len(pending),
        pending_ms=tuple(pending.values()),
        load=(load_before, os.getloadavg()[0]), cpu=cpu, session_ends=tuple(ends.most_common()),
        reject_reasons=tuple(Counter((m.get(58) or "")[:80] for m in got.values() if m.get(150) == "8").most_common(3)),
    )  # fmt: skip


def run(rate: int = 500, seconds: int = 30, sessions: int = 4) -> FixBenchResult:
    """One session at ``rate``, then ``sessions`` sharing it, each on a platform of its own."""
    return FixBenchResult(
        tuple(_run_on_a_platform(n, rate, seconds, label) for n, label in ((1, "one"), (sessions, "many")))
    )


def accounts_each(rate: int, seconds: int, sessions: int) -> int:
    """How many accounts each of ``sessions`` acts for: every order rests, and none of its
    accounts gets more than ``ACCOUNT_ORDERS`` of its share of ``rate`` x ``seconds``."""
    orders = -(-rate * seconds // sessions)
    return max(1, -(-orders // ACCOUNT_ORDERS))


def _run_on_a_platform(sessions: int, rate: int, seconds: int, label: str) -> RunFigures:
    platform = BenchPlatform()
    clients: list[FixClient] = []
    sessions = max(sessions, 1)
    try:
        created = platform.add_sessions(sessions, accounts_each=accounts_each(rate, seconds, sessions))
        clients = _clients(platform, created)
        accounts = [session["accounts"] for session in created]
        root = platform.process.pid
        _run(clients[:1], accounts, 20, 1, "warm", resting_prices(platform), root)  # the first orders: cold caches
        return _run(clients, accounts, rate, seconds, label, resting_prices(platform), root)
    finally:
        for client in clients:
            client.stop()
            shutil.rmtree(client.store_dir, ignore_errors=True)  # QuickFIX's own message store
        platform.stop()


def report(result: FixBenchResult) -> list[str]:
    lines = ["FIX gateway, local platform (QuickFIX initiator; orders rest, one share each)"]
    for r in result.runs:
        sent_rate = r.sent / r.send_seconds if r.send_seconds else 0.0
        ack_rate = r.acknowledged / r.ack_seconds if r.ack_seconds else 0.0
        worst = max(r.latencies_ms, default=float("nan"))
        lines += [
            f"  {r.sessions} session(s), {r.rate} NewOrderSingle/s in total for {r.seconds} s "
            f"(machine load average {r.load[0]:.1f} -> {r.load[1]:.1f} on {os.cpu_count()} CPUs):",
            f"    sent {r.sent} in {r.send_seconds:.1f} s ({sent_rate:.0f}/s); acknowledged {r.acknowledged} "
            f"(New {r.new}, Rejected {r.rejected}); not acknowledged when the bench stopped waiting {r.lost}",
            f"    acknowledged at {ack_rate:.0f}/s (first send to last report {r.ack_seconds:.1f} s)",
            f"    NewOrderSingle -> ExecutionReport(New): p50 {r.percentile(50):.1f} ms, "
            f"p99 {r.percentile(99):.1f} ms, max {worst:.1f} ms",
            f"    entered by the gateway (Pending New) {r.pending_new}: p50 {r.percentile(50, r.pending_ms):.1f} ms, "
            f"p99 {r.percentile(99, r.pending_ms):.1f} ms",
        ]
        if r.reject_reasons:
            lines.append("    rejected: " + "; ".join(f"{n} x {text}" for text, n in r.reject_reasons))
        if r.session_ends:
            lines.append(
                "    from the gateway's session layer: " + "; ".join(f"{n} x {text}" for text, n in r.session_ends)
            )
        lines += cpu_lines(r)
    return lines


def cpu_lines(r: RunFigures) -> list[str]:
    """The platform's CPU over a run, per order acknowledged, by process (``nexus.bench_local``'s
    roles)."""
    if not r.cpu or not r.acknowledged:
        return []
    total = sum(r.cpu.values())
    by_role = ", ".join(
        f"{role} {used * 1000 / r.acknowledged:.1f}"
        for role, used in sorted(r.cpu.items(), key=lambda kv: -kv[1])
        if used * 1000 >= r.acknowledged
    )
    return [f"    CPU per order acknowledged (the platform's processes, first send to the end of the wait): "
            f"{total * 1000 / r.acknowledged:.1f} ms ({total:.0f} CPU seconds): {by_role}"]  # fmt: skip
