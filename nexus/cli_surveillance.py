"""Market surveillance commands of the ``nexus`` CLI: ``surveillance scan`` and ``bench surveillance``.

``nexus surveillance scan --commands C.jsonl --events E.jsonl [--thresholds T.json] [--owners O.json]
--alerts OUT.jsonl`` runs every detector of ``nexus_surveillance`` over a journal in the formats
``nexus replay`` reads (commands, one per line) and writes (engine events, one per line; a stream
record ``{"events": [...]}`` per line is read too). The owner of each account comes from the
commands that name one (``user_id``) and from ``--owners`` (a JSON object account -> user), else
the account is its own owner. It prints a summary per detector and writes the alerts as JSON
lines, the same alerts the live path raises for the same events (``scan`` and the live consumer
run the same detectors, per symbol in engine order). The events are decoded and detected by
``--jobs`` forked processes (default one per core), each on its share of the symbols (every
detector keeps its state per symbol); their alerts are merged in the order one process gives.

``nexus bench surveillance`` scores the detectors on the seeded synthetic day (precision, recall,
F1 per detector; same-owner wash recall; the market maker's false alerts per 10,000 of its
orders; episodes straddling a clock boundary) and measures the scan from files (decoding
included, wall and the CPU of all its processes) and the detector library in process, on one core.
"""

from __future__ import annotations

import gc
import json
import os
import re
import sys
import tempfile
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

MAX_LINE = 1_000_000  # bytes: a longer line is not a record of the platform's


def _loads() -> Callable[[str | bytes], Any]:
    """orjson when installed (decimals on the wire are strings, so floats do not arise), else the
    standard library with JSON numbers read as Decimal."""
    try:
        import orjson
    except ImportError:
        def std(line: str | bytes) -> Any:
            return json.loads(line, parse_float=Decimal)

        return std
    return orjson.loads


@dataclass
class JournalStats:
    commands: int = 0
    orders: int = 0
    engine_lines: int = 0
    events: int = 0
    skipped_lines: int = 0  # book deltas and other types the detectors do not read
    unreadable: int = 0
    owners: int = 0
    by_command: Counter[str] = field(default_factory=Counter)


def _field(line: str, name: str) -> str | None:
    """The string value of ``"name":"..."`` in a compact JSON line, when it is written that way."""
    key = f'"{name}":"'
    i = line.find(key)
    if i < 0:
        return None
    i += len(key)
    j = line.find('"', i)
    value = line[i:j]
    return None if j < 0 or "\\" in value else value


def _command_line(line: str, stats: JournalStats, owners: dict[str, str], loads: Callable[[str | bytes], Any]) -> None:
    """One command line: counted, and its owner learned when it names one (the line-by-line way,
    for blocks that are not all compact lines of known types)."""
    from nexus_surveillance.events import DecodeError, from_order_command

    if not line.strip():
        return
    kind = _field(line, "type") if line.startswith("{") else None
    account = _field(line, "account_id") if kind is not None else None
    if kind is not None and account is not None and (account in owners or '"user_id"' not in line):
        stats.commands += 1
        stats.by_command[kind] += 1
        stats.orders += kind in ("new", "oco")
        return
    try:
        record = loads(line) if len(line) <= MAX_LINE else None
        event = from_order_command(record) if isinstance(record, dict) else None
    except (ValueError, DecodeError):
        record, event = None, None
    if not isinstance(record, dict):
        stats.unreadable += 1
        return
    stats.commands += 1
    stats.by_command[str(record.get("type"))] += 1
    if event is None:
        return
    if event.kind == "new":
        stats.orders += 1
    if event.user_id and event.account_id not in owners:
        owners[event.account_id] = event.user_id


_COMMAND_TYPES = ("new", "oco", "replace", "cancel", "mass_cancel", "clock", "halt", "resume")
_COMMAND_STARTS = tuple((name, f'\n{{"type":"{name}"'.encode()) for name in _COMMAND_TYPES)
# a compact command naming its account, then its user (as the platform writes them); greedy, which
# Python's re runs several times faster than a lazy match; the typed form where other commands are
_OWNER_LINE = re.compile(rb'"account_id":"([^"\\\n]*)"[^\n]*"user_id":"([^"\\\n]+)"')
_ORDER_OWNER_LINE = re.compile(
    rb'\n\{"type":"(?:new|oco|replace|cancel|mass_cancel)"[^\n]*"account_id":"([^"\\\n]*)"[^\n]*'
    rb'"user_id":"([^"\\\n]+)"'
)
_NOT_ORDERS = frozenset({"clock", "halt", "resume"})
CHUNK = 32 << 20  # bytes of a journal read at once


def _blocks(path: Path) -> Iterator[bytes]:
    """The file in blocks of whole lines, each block starting with a newline (so that every line,
    the first included, follows one) and ending with one."""
    with path.open("rb") as source:
        rest = b""
        while True:
            block = source.read(CHUNK)
            if not block:
                if rest.strip():
                    yield b"\n" + rest + b"\n"
                return
            block = rest + block
            cut = block.rfind(b"\n")
            if cut < 0:
                rest = block
                continue
            rest = block[cut + 1 :]
            yield b"\n" + block[: cut + 1]


def _command_block(
    block: bytes, stats: JournalStats, owners: dict[str, str], loads: Callable[[str | bytes], Any]
) -> None:
    """A block of command lines. When every line is a compact command of a known type (as the
    platform writes them), they are counted by searching the block, and the owners are read from
    the lines that name a user (the first line of an account wins, as line by line); any other
    block is read line by line."""
    lines = block.count(b"\n") - 1
    counts = [(name, block.count(start)) for name, start in _COMMAND_STARTS]
    named = block.count(b'"user_id":"')
    others = any(n for name, n in counts if name in _NOT_ORDERS)
    pairs = (_ORDER_OWNER_LINE if others else _OWNER_LINE).findall(block) if named else []
    if sum(n for _, n in counts) != lines or len(pairs) != named:
        for line in block[1:].decode("utf-8", errors="replace").split("\n")[:-1]:
            _command_line(line, stats, owners, loads)
        return
    stats.commands += lines
    for name, n in counts:
        if n:
            stats.by_command[name] += n
            stats.orders += n if name in ("new", "oco") else 0
    for account, user in dict(reversed(pairs)).items():  # reversed: each account's first line wins
        key = account.decode("utf-8", errors="replace")
        if key not in owners:
            owners[key] = user.decode("utf-8", errors="replace")


def read_owners(path: Path, stats: JournalStats, owners: dict[str, str]) -> None:
    """Count the commands of the journal at ``path`` and learn account -> owner from those that
    name their user."""
    loads = _loads()
    for block in _blocks(path):
        _command_block(block, stats, owners, loads)


_SKIP = (b'"type":"book"', b'"type":"triggered"', b'"type":"cancel_rejected"', b'"type":"trading_status"')
_FLAT = b'{"event_id"'
_SYMBOL = b'"symbol":"'


def partition_of(symbol: str | bytes, parts: int) -> int:
    """The partition of a symbol's events: the same in every process (not ``hash``, which is
    salted per process)."""
    raw = symbol.encode() if isinstance(symbol, str) else symbol
    return zlib.crc32(raw) % parts


def read_events(
    path: Path, owners: dict[str, str], stats: JournalStats, part: int = 0, parts: int = 1
) -> list[Any]:
    """Decode the engine's events of the symbols of partition ``part`` of ``parts`` (all of them
    with one). Book deltas and the other types the detectors do not read are skipped before
    parsing; a compact flat event (as ``nexus replay`` writes them) names its symbol once, so the
    other partitions' lines are skipped before parsing too; any other line (a stream record of
    several events) is parsed, and its events of other partitions dropped. Every line is counted
    in partition 0's ``stats`` (and an unreadable one there, unless it was routed by symbol)."""
    from nexus_surveillance.events import DecodeError, from_execution_event

    loads = _loads()
    out: list[Any] = []
    extend = out.extend
    route: dict[bytes, int] = {}
    first = part == 0
    skip0, skip1, skip2, skip3 = _SKIP
    with path.open("rb") as source:
        for line in source:
            stats.engine_lines += 1
            routed = False
            if line.startswith(_FLAT):
                if skip0 in line or skip1 in line or skip2 in line or skip3 in line:
                    stats.skipped_lines += 1
                    continue
                if parts > 1:
                    i = line.find(_SYMBOL)
                    j = line.find(b'"', i + 10) if i >= 0 else -1
                    if j > 0 and line.find(_SYMBOL, j) < 0 and 92 not in line[i + 10 : j]:  # 92: a backslash
                        raw = line[i + 10 : j]
                        p = route.get(raw)
                        if p is None:
                            p = route[raw] = partition_of(raw, parts)
                        if p != part:
                            continue
                        routed = True
            if not line.strip():
                continue
            try:
                record = loads(line) if len(line) <= MAX_LINE else None
                decoded = from_execution_event(record, owners) if isinstance(record, dict) else None
            except (ValueError, DecodeError):
                decoded = None
            if decoded is None:
                stats.unreadable += routed or first
                continue
            if parts > 1 and not routed:
                decoded = [e for e in decoded if partition_of(e.symbol, parts) == part]
            stats.events += len(decoded)
            extend(decoded)
    return out


def read_live_lag(redis_url: str, stage: str) -> dict[str, Any]:
    """The live consumer's lag, as it records it with each ``execution-events`` batch it applies
    (``nexus-<stage>-surveillance:lag`` and ``:progress`` in the platform's Redis), for a
    benchmark to read after a run::

        {"batches": int, "records": int,          # batches applied and their stream records
         "last_lag_ms": int | None,               # the last batch: consumer clock - newest engine ts
         "max_lag_ms": int | None, "mean_lag_ms": float | None,
         "last_records": int, "last_at": str | None, "last_shard": str | None,
         "high_water_marks": {"<stream>/<shard id>": "<newest engine ts applied, ISO>"}}

    ``None`` figures: no batch recorded yet. A lag that does not grow from batch to batch is a
    consumer that keeps up; ``reset_live_lag`` clears the figures (not the marks) before a run."""
    import redis
    from nexus_surveillance.repo import live_lag

    client = redis.Redis.from_url(redis_url)
    try:
        figures: dict[str, Any] = live_lag(client, f"nexus-{stage}-surveillance")
        return figures
    finally:
        client.close()


def reset_live_lag(redis_url: str, stage: str) -> None:
    """Clear the lag figures ``read_live_lag`` reads (the flush's high-water marks stay)."""
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        client.delete(f"nexus-{stage}-surveillance:lag")
    finally:
        client.close()


def load_thresholds(path: Path | None) -> dict[str, Any]:
    """``{detector: {field: value}}`` checked against each detector's model (ValueError if not)."""
    from nexus_surveillance.detectors import DETECTORS
    from pydantic import ValidationError

    if path is None:
        return {}
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a JSON object of thresholds ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: not a JSON object of thresholds")
    models: dict[str, Any] = {}
    for name, values in raw.items():
        cls = DETECTORS.get(name)
        if cls is None:
            raise ValueError(f"{path}: unknown detector {name!r}; one of {', '.join(sorted(DETECTORS))}")
        try:
            models[name] = cls.thresholds_model.model_validate(values)
        except ValidationError as exc:
            raise ValueError(f"{path}: {name}: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}") from exc
    return models


def load_owners(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ValueError(f"{path}: expected a JSON object account id -> user id")
    return dict(raw)


@dataclass
class ScanResult:
    alerts: list[Any]
    stats: JournalStats
    decode_s: float
    detect_s: float
    decode_cpu_s: float = 0.0
    detect_cpu_s: float = 0.0
    events: list[Any] = field(default_factory=list)  # the decoded events, when asked to keep them
    jobs: int = 1  # processes that decoded and detected (symbols split between them)


def default_jobs() -> int:
    """Processes for a scan from files: one per core the process may use, at most 8; 1 where a
    process cannot be forked (the partitions would have to be sent to fresh interpreters)."""
    import multiprocessing

    if "fork" not in multiprocessing.get_all_start_methods():
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(8, cores))


@dataclass
class _Part:
    """What one partition's process sends back after its events (then its flush)."""

    alerts: list[Any]
    last_ts: int
    stats: JournalStats
    decode_s: float
    detect_s: float
    decode_cpu_s: float
    detect_cpu_s: float


def _scan_part(
    events: Path, owners: dict[str, str], thresholds: dict[str, Any], part: int, parts: int
) -> tuple[_Part, list[Any], list[Any]]:
    """Decode and detect one partition's symbols; returns it and its detectors (for the flush)."""
    from nexus_surveillance.scan import build_detectors, detect, order_events

    stats = JournalStats()
    started, cpu_started = time.perf_counter(), time.process_time()
    decoded = read_events(events, owners, stats, part, parts)
    decoded_at, cpu_decoded_at = time.perf_counter(), time.process_time()
    detectors = build_detectors(thresholds)
    alerts, last = detect(order_events(decoded), detectors)
    done = _Part(alerts, last, stats, decoded_at - started, time.perf_counter() - decoded_at,
                 cpu_decoded_at - cpu_started, time.process_time() - cpu_decoded_at)  # fmt: skip
    return done, detectors, decoded


def _part_process(conn: Any, events: Path, owners: dict[str, str], thresholds: dict[str, Any], part: int,
                  parts: int) -> None:  # fmt: skip
    """A forked process: one partition's events, then (given the scan's end) its flush."""
    from nexus_surveillance.scan import finish

    try:  # an error ends the process (its traceback on stderr): the parent reads the pipe's end
        done, detectors, decoded = _scan_part(events, owners, thresholds, part, parts)
        decoded.clear()
        conn.send(done)
        end = conn.recv()
        cpu = time.process_time()
        conn.send((finish(detectors, end), time.process_time() - cpu))
    finally:
        conn.close()


def _receive(conn: Any, part: int) -> Any:
    try:
        return conn.recv()
    except EOFError as exc:
        raise RuntimeError(f"surveillance scan: partition {part} failed (its error is on stderr)") from exc


def _merge_by_symbol(lists: Iterable[list[Any]]) -> list[Any]:
    """The alerts of several partitions in the order one process gives: by symbol (each symbol's
    alerts come from one partition, in their own order; ``sorted`` is stable)."""
    return sorted((a for alerts in lists for a in alerts), key=lambda a: a.symbol)


def scan_files(
    commands: Path, events: Path, thresholds: dict[str, Any], owners: dict[str, str], keep: bool = False,
    jobs: int | None = None,
) -> ScanResult:  # fmt: skip
    """The commands (counted; owners learned), then the events decoded and detected by ``jobs``
    processes, each on its share of the symbols (every detector keeps its state per symbol, so
    the alerts, merged by symbol, are those of one process; ``keep`` needs one process)."""
    from nexus_surveillance.scan import DAY_NS, dedupe, finish

    parts = 1 if keep else max(1, jobs if jobs is not None else default_jobs())
    stats = JournalStats()
    enabled = gc.isenabled()
    gc.disable()  # millions of small acyclic objects: the collector would walk them over and over
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        read_owners(commands, stats, owners)
        stats.owners = len(owners)
        owners_s, owners_cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if parts == 1:
            done, detectors, decoded = _scan_part(events, owners, thresholds, 0, 1)
            flush_cpu = time.process_time()
            alerts = done.alerts + finish(detectors, done.last_ts + DAY_NS)
            results = [done]
            flush_cpu = time.process_time() - flush_cpu
        else:
            decoded = []
            alerts, results, flush_cpu = _scan_parallel(events, owners, thresholds, parts)
        for i, part in enumerate(results):
            stats.events += part.stats.events
            stats.unreadable += part.stats.unreadable
            if i == 0:
                stats.engine_lines, stats.skipped_lines = part.stats.engine_lines, part.stats.skipped_lines
        alerts = dedupe(alerts)
        total = time.perf_counter() - started
    finally:
        if enabled:
            gc.enable()
    decode_s = owners_s + max(p.decode_s for p in results)
    decode_cpu = owners_cpu + sum(p.decode_cpu_s for p in results)
    return ScanResult(alerts, stats, decode_s, total - decode_s, decode_cpu,
                      sum(p.detect_cpu_s for p in results) + flush_cpu, decoded if keep else [], parts)  # fmt: skip


def _scan_parallel(
    events: Path, owners: dict[str, str], thresholds: dict[str, Any], parts: int
) -> tuple[list[Any], list[_Part], float]:
    """``parts`` forked processes (they inherit the owners: nothing large is sent to them); the
    scan's end (a day after its last event) is known once every partition sent its events'
    alerts, then each flushes."""
    import multiprocessing

    from nexus_surveillance.scan import DAY_NS

    context = multiprocessing.get_context("fork")
    pipes = []
    processes = []
    try:
        for part in range(parts):
            mine, theirs = context.Pipe()
            process = context.Process(target=_part_process, args=(theirs, events, owners, thresholds, part, parts),
                                      daemon=True)  # fmt: skip
            process.start()
            theirs.close()
            pipes.append(mine)
            processes.append(process)
        results: list[_Part] = [_receive(conn, part) for part, conn in enumerate(pipes)]
        end = max(p.last_ts for p in results) + DAY_NS
        for conn in pipes:
            conn.send(end)
        flushed = [_receive(conn, part) for part, conn in enumerate(pipes)]
    finally:
        for conn in pipes:
            conn.close()
        for process in processes:
            process.join(timeout=10)
            if process.is_alive():
                process.kill()
    alerts = _merge_by_symbol(p.alerts for p in results)
    # each detector's flush, in the detectors' order, merged by symbol the same way
    from nexus_surveillance.detectors import DETECTORS

    for name in DETECTORS:
        alerts.extend(_merge_by_symbol([a for a in part_alerts if a.detector == name] for part_alerts, _ in flushed))
    return alerts, results, sum(cpu for _, cpu in flushed)


def summary(alerts: Iterable[Any]) -> list[str]:
    from nexus_surveillance.detectors import DETECTORS

    counts: dict[str, Counter[str]] = {name: Counter() for name in DETECTORS}
    for alert in alerts:
        counts[alert.detector][alert.severity] += 1
    lines = [f"  {'detector':<20}{'alerts':>8}  {'LOW':>5} {'MEDIUM':>7} {'HIGH':>5} {'CRITICAL':>9}"]
    for name, c in counts.items():
        lines.append(f"  {name:<20}{sum(c.values()):>8}  {c['LOW']:>5} {c['MEDIUM']:>7} {c['HIGH']:>5} "
                     f"{c['CRITICAL']:>9}")
    return lines


def write_alerts(alerts: Iterable[Any], out: TextIO) -> int:
    n = 0
    for alert in alerts:
        out.write(alert.model_dump_json())
        out.write("\n")
        n += 1
    return n


# -- the benchmark -----------------------------------------------------------------------------


def write_day(directory: Path, seed: int, symbols: int, episodes: int, users: int, benign_rate: float) -> Any:
    """The synthetic day as two journals (``commands.jsonl``, ``events.jsonl``) in ``directory``."""
    from nexus_surveillance.synthetic import generate_day

    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    with (directory / "commands.jsonl").open("w", encoding="utf-8", newline="\n") as cmd_out, \
            (directory / "events.jsonl").open("w", encoding="utf-8", newline="\n") as ev_out:
        def on_command(record: dict[str, Any]) -> None:
            cmd_out.write(dumps(record))
            cmd_out.write("\n")

        def on_event(record: dict[str, Any]) -> None:
            ev_out.write(dumps(record))
            ev_out.write("\n")

        return generate_day(seed, symbols, episodes, users, on_command=on_command, on_event=on_event,
                            benign_rate=benign_rate)


def bench_report(
    day: Any, result: ScanResult, library: tuple[int, float, float], out: Callable[[str], None]
) -> None:
    from nexus_surveillance.evaluation import evaluate

    report = evaluate(result.alerts, day.episodes, day.stats.market_maker_orders)
    stats = day.stats
    out(f"synthetic day: {stats.events:,} engine events + {stats.commands:,} commands, {stats.orders:,} orders "
        f"({stats.market_maker_orders:,} of the market maker), {stats.trades:,} trades, "
        f"{len(day.episodes):,} injected episodes")
    out(f"  {'detector':<20}{'episodes':>9}{'alerts':>8}{'precision':>11}{'recall':>8}{'F1':>7}"
        f"{'straddling caught':>19}{'on other patterns':>19}")
    for s in report.scores.values():
        out(f"  {s.detector:<20}{s.episodes:>9}{s.alerts:>8}{s.precision:>11.3f}{s.recall:>8.3f}{s.f1:>7.3f}"
            f"{f'{s.straddling_caught}/{s.straddling}':>19}{s.cross_pattern_alerts:>19}")
    out(f"  same-owner wash trades: recall {report.same_owner_wash_recall:.3f} "
        f"({report.same_owner_wash_caught}/{report.same_owner_wash_episodes})")
    out(f"  market maker: {report.market_maker_alerts} false alerts on {report.market_maker_orders:,} orders = "
        f"{report.market_maker_alerts_per_10k:.2f} per 10,000")
    out("  (precision counts an alert on another pattern's injected episode as false; 'straddling' = "
        "across a minute boundary, a second for quote stuffing)")
    decoded = result.stats.events
    total = result.decode_s + result.detect_s
    out(f"historical scan from files: {result.stats.orders:,} orders, {result.stats.engine_lines:,} event lines "
        f"-> {decoded:,} detector events, {len(result.alerts):,} alerts")
    cpu = result.decode_cpu_s + result.detect_cpu_s
    out(f"  wall: read+decode {result.decode_s:.2f} s, detectors {result.detect_s:.2f} s, total {total:.2f} s = "
        f"{result.stats.orders / total:,.0f} orders/s, {decoded / total:,.0f} events/s ({_json_name()}; "
        f"{result.jobs} process{'es' if result.jobs > 1 else ''}, symbols split between them)")
    out(f"  CPU of all processes: read+decode {result.decode_cpu_s:.2f} s, detectors {result.detect_cpu_s:.2f} s, "
        f"total {cpu:.2f} s = {result.stats.orders / cpu:,.0f} orders/s")
    events, seconds, cpu_seconds = library
    out(f"detector library, in process, one core: {events:,} events through all six detectors: wall {seconds:.2f} s "
        f"= {events / seconds:,.0f} events/s, CPU {cpu_seconds:.2f} s = {events / cpu_seconds:,.0f} events/s "
        f"(best of runs)")


def _json_name() -> str:
    try:
        import orjson  # noqa: F401
    except ImportError:
        return "stdlib json; orjson is not installed"
    return "orjson"


def time_library(events: list[Any], repeat: int) -> tuple[int, float, float]:
    """Events through all six detectors (``scan``): the best wall and CPU seconds of ``repeat`` runs."""
    from nexus_surveillance.scan import scan

    best = best_cpu = float("inf")
    gc.collect()
    gc.freeze()
    try:
        for _ in range(repeat):
            started, cpu_started = time.perf_counter(), time.process_time()
            scan(events)
            best = min(best, time.perf_counter() - started)
            best_cpu = min(best_cpu, time.process_time() - cpu_started)
    finally:
        gc.unfreeze()
    return len(events), best, best_cpu


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    surveillance_app = typer.Typer(help="Market surveillance: detectors over order flow.", no_args_is_help=True)
    app.add_typer(surveillance_app, name="surveillance")

    @surveillance_app.command("scan")
    def scan_command(
        commands: Annotated[Path, typer.Option("--commands", help="Command journal (JSON Lines).", exists=True,
                                               dir_okay=False)],
        events: Annotated[Path, typer.Option("--events", help="Engine events (JSON Lines, as nexus replay "
                                             "writes them).", exists=True, dir_okay=False)],
        alerts: Annotated[Path, typer.Option("--alerts", help="Write the alerts here (JSON Lines).",
                                             dir_okay=False)],
        thresholds: Annotated[Path | None, typer.Option("--thresholds", help="JSON object {detector: "
                                                        "{threshold: value}}.", exists=True,
                                                        dir_okay=False)] = None,
        owners: Annotated[Path | None, typer.Option("--owners", help="JSON object account id -> owner user "
                                                    "id.", exists=True, dir_okay=False)] = None,
        jobs: Annotated[int | None, typer.Option(min=1, max=64, help="Processes (symbols split between them); "
                                                 "default one per core.")] = None,
    ) -> None:
        """Run every detector over a journal; print a summary per detector, write the alerts."""
        try:
            models = load_thresholds(thresholds)
            owner_map = load_owners(owners)
        except ValueError as exc:
            typer.echo(f"surveillance scan: {exc}", err=True)
            raise typer.Exit(2) from exc
        try:
            result = scan_files(commands, events, models, owner_map, jobs=jobs)
            with alerts.open("w", encoding="utf-8", newline="\n") as out:
                written = write_alerts(result.alerts, out)
        except OSError as exc:
            typer.echo(f"surveillance scan: {exc}", err=True)
            raise typer.Exit(2) from exc
        s = result.stats
        typer.echo(f"scanned {s.commands:,} commands ({s.orders:,} orders) and {s.engine_lines:,} event lines "
                   f"({s.events:,} detector events, {s.skipped_lines:,} book and other lines skipped, "
                   f"{s.unreadable:,} unreadable); {s.owners:,} account owners known")
        for line in summary(result.alerts):
            typer.echo(line)
        typer.echo(f"{written:,} alerts written to {alerts}")

    @bench_app.command("surveillance")
    def bench_surveillance(
        seed: Annotated[int, typer.Option(help="Seed of the synthetic day.")] = 7,
        symbols: Annotated[int, typer.Option(min=1, max=10_000, help="Symbols (one close each).")] = 160,
        episodes: Annotated[int, typer.Option(min=1, max=10_000, help="Injected episodes per pattern.")] = 120,
        users: Annotated[int, typer.Option(min=10, max=1_000_000, help="Benign owners.")] = 2_000,
        benign_rate: Annotated[float, typer.Option(min=0.01, max=100.0, help="Benign flow, relative.")] = 1.0,
        repeat: Annotated[int, typer.Option(min=1, max=10, help="Library timing runs (best kept).")] = 2,
        keep: Annotated[Path | None, typer.Option(help="Keep the day's journals in this directory.",
                                                  file_okay=False)] = None,
        jobs: Annotated[int | None, typer.Option(min=1, max=64, help="Processes of the scan (symbols split "
                                                 "between them); default one per core.")] = None,
    ) -> None:
        """Detector quality on the seeded synthetic day, scan speed from files, library events/s."""
        if symbols < episodes:
            typer.echo("bench surveillance: --symbols must be at least --episodes (one close per symbol)", err=True)
            raise typer.Exit(2)
        with tempfile.TemporaryDirectory(prefix="nexus-surv-") as tmp:
            directory = keep or Path(tmp)
            directory.mkdir(parents=True, exist_ok=True)
            typer.echo(f"generating the synthetic day (seed {seed}) into {directory} ...", err=True)
            day = write_day(directory, seed, symbols, episodes, users, benign_rate)
            owners_path = directory / "owners.json"
            owners_path.write_text(json.dumps(day.owners), encoding="utf-8")
            typer.echo("scanning the journals ...", err=True)
            result = scan_files(directory / "commands.jsonl", directory / "events.jsonl", {}, {}, jobs=jobs)
            typer.echo("timing the detector library ...", err=True)
            decoded = read_events(directory / "events.jsonl", day.owners, JournalStats())
            library = time_library(decoded, repeat)
            decoded.clear()
            bench_report(day, result, library, typer.echo)
            typer.echo(f"(python {sys.version.split()[0]}; the figures depend on the machine's load)")
