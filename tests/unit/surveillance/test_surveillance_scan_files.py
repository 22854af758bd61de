"""The scan from files (``nexus surveillance scan``): split between processes by symbol, it gives
the alerts of one process in the same order, and the library's ``scan`` of the same events; the
commands' fast count by block agrees with reading them line by line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from nexus_surveillance.scan import scan

from nexus.cli_surveillance import JournalStats, read_events, read_owners, scan_files, write_day


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("surv-day")
    write_day(directory, seed=5, symbols=6, episodes=3, users=40, benign_rate=0.05)
    return directory


def test_the_alerts_are_the_same_split_over_one_two_or_three_processes(day: Path) -> None:
    # GIVEN a small synthetic day with episodes of every pattern
    # WHEN it is scanned by one process, then with its symbols split between two and three
    one = scan_files(day / "commands.jsonl", day / "events.jsonl", {}, {}, jobs=1)
    two = scan_files(day / "commands.jsonl", day / "events.jsonl", {}, {}, jobs=2)
    three = scan_files(day / "commands.jsonl", day / "events.jsonl", {}, {}, jobs=3)
    # THEN the alerts are the same, in the same order, and so are the counts
    assert len({a.detector for a in one.alerts}) >= 4
    assert [a.model_dump() for a in two.alerts] == [a.model_dump() for a in one.alerts]
    assert [a.model_dump() for a in three.alerts] == [a.model_dump() for a in one.alerts]
    assert two.stats == one.stats == three.stats and (one.jobs, two.jobs, three.jobs) == (1, 2, 3)
    # AND they are the library's alerts for the decoded events
    owners: dict[str, str] = {}
    read_owners(day / "commands.jsonl", JournalStats(), owners)
    decoded = read_events(day / "events.jsonl", owners, JournalStats())
    assert [a.id for a in scan(decoded)] == [a.id for a in one.alerts]


def test_a_repeated_event_line_changes_nothing(day: Path, tmp_path: Path) -> None:
    # GIVEN the day's events with a hundred lines written twice (a journal appended to twice)
    lines = (day / "events.jsonl").read_text(encoding="utf-8").splitlines(keepends=True)
    doubled = tmp_path / "events.jsonl"
    doubled.write_text("".join(lines[:100] + lines[:100] + lines[100:]), encoding="utf-8")
    # WHEN scanned (the symbols with a repeat go event by event through each detector's watermark)
    once = scan_files(day / "commands.jsonl", day / "events.jsonl", {}, {}, jobs=2)
    twice = scan_files(day / "commands.jsonl", doubled, {}, {}, jobs=2)
    # THEN the alerts are the same
    assert [a.id for a in twice.alerts] == [a.id for a in once.alerts]


def test_compact_commands_counted_by_block_agree_with_reading_them_line_by_line(day: Path, tmp_path: Path) -> None:
    # GIVEN the day's commands as the platform writes them (compact), and the same with spaces
    # (which the fast count does not recognise), a blank and an unreadable line
    compact = day / "commands.jsonl"
    spaced = tmp_path / "commands.jsonl"
    records = [json.loads(line) for line in compact.read_text(encoding="utf-8").splitlines()]
    spaced.write_text("\n".join(json.dumps(r) for r in records) + "\n\nnot json\n", encoding="utf-8")
    # WHEN both are read
    fast, slow = JournalStats(), JournalStats()
    fast_owners: dict[str, str] = {}
    slow_owners: dict[str, str] = {}
    read_owners(compact, fast, fast_owners)
    read_owners(spaced, slow, slow_owners)
    # THEN the counts and the owners learned are the same (the unreadable line counted apart)
    assert fast_owners == slow_owners and len(fast_owners) > 10
    assert (fast.commands, fast.orders, fast.by_command) == (slow.commands, slow.orders, slow.by_command)
    assert (fast.unreadable, slow.unreadable) == (0, 1)
