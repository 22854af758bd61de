"""``nexus replay``: a command journal through the engine, in process, with no AWS.

Input: JSON Lines, one command per line (the formats are in the README, "Engine command and
event formats"); blank lines are skipped. JSON numbers are read as ``Decimal``, never as float.
A command without ``command_id`` gets ``L<line number>``; one without ``ts`` gets the previous
command's ``ts`` (``1970-01-01T00:00:00.000000Z`` before the first), so a journal of bare
commands replays deterministically. Output: every event as one compact JSON line, in order.
The same journal and instruments always give byte-identical output.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from nexus_common.instruments import DEMO_INSTRUMENTS, Instrument

from nexus_matching.engine import EngineConfig, MatchingEngine

FIRST_TS = "1970-01-01T00:00:00.000000Z"


@dataclass
class ReplayStats:
    commands: int = 0
    unreadable: int = 0  # lines that are not a JSON object
    events: int = 0
    dropped: int = 0  # commands the engine could not answer (docs/matching-engine.md, "Idempotency and robustness")


def load_instruments(path: Path | None) -> dict[str, Instrument]:
    """The demo instruments, or a JSON list of instrument objects from ``path``."""
    if path is None:
        return {i.symbol: i for i in DEMO_INSTRUMENTS}
    raw = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    if not isinstance(raw, list):
        raise ValueError(f"{path}: expected a JSON list of instruments")
    instruments = [Instrument.model_validate(item) for item in raw]
    return {i.symbol: i for i in instruments}


def commands_of(lines: Iterable[str], stats: ReplayStats | None = None) -> Iterator[Any]:
    """Parse journal lines into commands with deterministic defaults (see the module doc)."""
    last_ts = FIRST_TS
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            command = json.loads(line, parse_float=Decimal)
        except ValueError:
            command = None
        if not isinstance(command, dict):
            if stats is not None:
                stats.unreadable += 1
            yield command
            continue
        command.setdefault("command_id", f"L{number}")
        if "ts" not in command:
            command["ts"] = last_ts
        elif isinstance(command["ts"], str):
            last_ts = command["ts"]
        yield command


def replay(
    lines: Iterable[str],
    out: TextIO | None,
    instruments: Mapping[str, Instrument],
    config: EngineConfig | None = None,
) -> ReplayStats:
    """Run the journal; write each event as a JSON line to ``out`` (None: count only)."""
    engine = MatchingEngine(instruments, config=config)
    stats = ReplayStats()
    dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    for command in commands_of(lines, stats):
        stats.commands += 1
        events = engine.process(command)
        stats.events += len(events)
        if out is not None:
            for event in events:
                out.write(dumps(event))
                out.write("\n")
    stats.dropped = engine.dropped_commands
    return stats


def replay_file(commands: Path, events: Path | None, instruments: Path | None, stdout: TextIO) -> ReplayStats:
    known = load_instruments(instruments)
    with commands.open(encoding="utf-8") as source:
        if events is None:
            return replay(source, stdout, known)
        with events.open("w", encoding="utf-8", newline="\n") as sink:
            return replay(source, sink, known)
