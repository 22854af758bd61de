"""Market surveillance commands of the ``nexus`` CLI: ``surveillance scan`` and ``bench surveillance``.

``nexus surveillance scan --commands C.jsonl --events E.jsonl [--thresholds T.json] [--owners O.json]
--alerts OUT.jsonl`` runs every detector of ``nexus_surveillance`` over a journal in the formats
``nexus replay`` reads (commands, one per line) and writes (engine events, one per line; a stream
record ``{"events": [...]}`` per line is read too). The owner of each account comes from the
commands that name one (``user_id``) and from ``--owners`` (a JSON object account -> user), else
the account is its own owner. It prints a summary per detector and writes the alerts as JSON
lines, the same alerts the live path raises for the same events (``scan`` and the live consumer
run the same detectors, per symbol in engine order).

``nexus bench surveillance`` scores the detectors on the seeded synthetic day (precision, recall,
F1 per detector; same-owner wash recall; the market maker's false alerts per 10,000 of its
orders; episodes straddling a clock boundary) and measures the scan from files (decoding
included) and the detector library in process, on one core.
"""

from __future__ import annotations

import gc
import json
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, TextIO

import typer

MAX_LINE = 1_000_000  # bytes: a longer line is not a record of the platform's


def _loads() -> Callable[[str], Any]:
    """orjson when installed (decimals on the wire are strings, so floats do not arise), else the
    standard library with JSON numbers read as Decimal."""
    try:
        import orjson
    except ImportError:
        def std(line: str) -> Any:
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


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as source:
        yield from source


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


def read_owners(commands: Iterable[str], stats: JournalStats, owners: dict[str, str]) -> None:
    """Count the commands and learn account -> owner from those that name their user. A compact
    line (as the platform writes them) of an account whose owner is known is counted without
    parsing; any other line is parsed in full."""
    from nexus_surveillance.events import DecodeError, from_order_command

    loads = _loads()
    for line in commands:
        if not line.strip():
            continue
        kind = _field(line, "type") if line.startswith("{") else None
        account = _field(line, "account_id") if kind is not None else None
        if kind is not None and account is not None and (account in owners or '"user_id"' not in line):
            stats.commands += 1
            stats.by_command[kind] += 1
            stats.orders += kind in ("new", "oco")
            continue
        try:
            record = loads(line) if len(line) <= MAX_LINE else None
            event = from_order_command(record) if isinstance(record, dict) else None
        except (ValueError, DecodeError):
            record, event = None, None
        if not isinstance(record, dict):
            stats.unreadable += 1
            continue
        stats.commands += 1
        stats.by_command[str(record.get("type"))] += 1
        if event is None:
            continue
        if event.kind == "new":
            stats.orders += 1
        if event.user_id and event.account_id not in owners:
            owners[event.account_id] = event.user_id


_SKIP = ('"type":"book"', '"type":"triggered"', '"type":"cancel_rejected"', '"type":"trading_status"')


def read_events(lines: Iterable[str], owners: dict[str, str], stats: JournalStats) -> list[Any]:
    """Decode the engine's events; book deltas (a third of the lines) are skipped before parsing."""
    from nexus_surveillance.events import DecodeError, from_execution_event

    loads = _loads()
    out: list[Any] = []
    extend = out.extend
    for line in lines:
        stats.engine_lines += 1
        if line.startswith('{"event_id"') and (_SKIP[0] in line or any(s in line for s in _SKIP[1:])):
            stats.skipped_lines += 1
            continue
        if not line.strip():
            continue
        try:
            record = loads(line) if len(line) <= MAX_LINE else None
            decoded = from_execution_event(record, owners) if isinstance(record, dict) else None
        except (ValueError, DecodeError):
            decoded = None
        if decoded is None:
            stats.unreadable += 1
            continue
        stats.events += len(decoded)
        extend(decoded)
    return out


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


def scan_files(
    commands: Path, events: Path, thresholds: dict[str, Any], owners: dict[str, str], keep: bool = False
) -> ScanResult:
    from nexus_surveillance.scan import scan

    stats = JournalStats()
    enabled = gc.isenabled()
    gc.disable()  # millions of small acyclic objects: the collector would walk them over and over
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        read_owners(_lines(commands), stats, owners)
        stats.owners = len(owners)
        decoded = read_events(_lines(events), owners, stats)
        decoded_at, cpu_decoded_at = time.perf_counter(), time.process_time()
        alerts = scan(decoded, thresholds)
    finally:
        if enabled:
            gc.enable()
    return ScanResult(alerts, stats, decoded_at - started, time.perf_counter() - decoded_at,
                      cpu_decoded_at - cpu_started, time.process_time() - cpu_decoded_at, decoded if keep else [])


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
        f"{result.stats.orders / total:,.0f} orders/s ({_json_name()})")
    out(f"  CPU:  read+decode {result.decode_cpu_s:.2f} s, detectors {result.detect_cpu_s:.2f} s, total {cpu:.2f} s = "
        f"{result.stats.orders / cpu:,.0f} orders/s")
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
    ) -> None:
        """Run every detector over a journal; print a summary per detector, write the alerts."""
        try:
            models = load_thresholds(thresholds)
            owner_map = load_owners(owners)
        except ValueError as exc:
            typer.echo(f"surveillance scan: {exc}", err=True)
            raise typer.Exit(2) from exc
        try:
            result = scan_files(commands, events, models, owner_map)
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
            result = scan_files(directory / "commands.jsonl", directory / "events.jsonl", {}, {}, keep=True)
            typer.echo("timing the detector library ...", err=True)
            library = time_library(result.events, repeat)
            result.events.clear()
            bench_report(day, result, library, typer.echo)
            typer.echo(f"(python {sys.version.split()[0]}; the figures depend on the machine's load)")
