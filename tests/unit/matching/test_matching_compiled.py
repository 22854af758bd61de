"""The compiled engine (Cython extension) against the pure Python engine it is compiled from.

``nexus replay`` runs the same random journal, with every command type and instruction, once in
a process where the extension modules are imported and once with ``NEXUS_MATCHING_PURE=1`` (the
``.py`` sources); the two event streams must be byte-identical. The comparison needs the
extension: without it (no C compiler when the package was installed) it is skipped.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from nexus_matching import CORE_MODULES, PURE_ENV, pure_requested

Command = dict[str, Any]

SYMBOLS = {"AAPL": 10_000, "MSFT": 40_000}  # base prices in cents
STP_MODES = ("cancel_newest", "cancel_oldest", "cancel_both", "decrement")
KINDS = (
    ("limit",) * 8 + ("market", "stop", "oco", "replace", "cancel", "cancel", "mass", "clock", "bad", "halt", "fence")
)

# Runs in a child process: replay the journal to a file, and tell which implementation ran.
CHILD = """
import sys
from pathlib import Path
import nexus_matching
from nexus_matching.replay import replay_file
stats = replay_file(Path(sys.argv[1]), Path(sys.argv[2]), None, sys.stdout)
print(nexus_matching.implementation(), stats.commands, stats.events, stats.dropped)
"""


def compiled_available() -> bool:
    """Are the extension modules installed next to the sources (whatever this process imported)?"""
    import nexus_matching

    folder = Path(nexus_matching.__file__).parent
    return all(any(folder.glob(f"{name}.*.so")) or any(folder.glob(f"{name}.*.pyd")) for name in CORE_MODULES)


def stamp(minute: int) -> str:
    day, minute = divmod(minute, 24 * 60)
    return f"2024-05-{1 + day:02d}T{minute // 60:02d}:{minute % 60:02d}:00Z"


def random_journal(seed: int, size: int) -> list[Command]:
    """Commands over two symbols: limit (iceberg, post-only, every STP mode, GTC/DAY/GTD/IOC/FOK),
    market, stop, stop-limit, OCO (stop and stop-limit legs), replace, cancel (orders and groups),
    mass cancel, clock, halt and resume, fence (of received and fresh ids); time crossing session closes; some
    invalid and some malformed commands."""
    rng = random.Random(seed)
    ids: dict[str, list[str]] = {symbol: [] for symbol in SYMBOLS}
    commands: list[Command] = []
    minute = 19 * 60  # 15:00 in New York: DAY orders expire at the next close
    for i in range(size):
        minute += rng.choice((0, 0, 0, 1, 2, 7))
        ts = stamp(minute)
        symbol = rng.choice(tuple(SYMBOLS))
        account = rng.choice(("a1", "a2", "a3", "a4"))
        base: Command = {"command_id": f"c{i}", "account_id": account, "symbol": symbol, "ts": ts}
        kind = rng.choice(KINDS)
        if kind in ("replace", "cancel") and ids[symbol]:
            command = {**base, "type": kind, "order_id": rng.choice(ids[symbol])}
            if kind == "replace":
                choice = rng.randint(0, 2)
                if choice != 1:
                    command["quantity"] = str(rng.randint(1, 15))
                if choice != 0:
                    command["price"] = str(Decimal(SYMBOLS[symbol] + rng.randint(-6, 6)) / 100)
            commands.append(command)
            continue
        if kind == "mass":
            command = {**base, "type": "mass_cancel"}
            if rng.random() < 0.5:
                del command["symbol"]
            commands.append(command)
            continue
        if kind == "clock":
            commands.append({"type": "clock", "command_id": f"c{i}", "ts": ts})
            continue
        if kind == "fence":
            # an id the engine received, or a fresh one (its entry never completed), now and then
            # of a symbol that is not an instrument; a fresh id may later come as a resent ``new``
            if ids[symbol] and rng.random() < 0.5:
                fenced = rng.choice(ids[symbol])
            else:
                fenced = f"f{i}"
                ids[symbol].append(fenced)
            command = {**base, "type": "fence", "order_id": fenced}
            if rng.random() < 0.1:
                command["symbol"] = "NOPE"
            commands.append(command)
            continue
        if kind == "halt":
            action = "halt" if rng.random() < 0.4 else "resume"
            commands.append({"type": action, "command_id": f"c{i}", "symbol": symbol, "reason": "r", "ts": ts})
            continue
        side = rng.choice(("buy", "sell"))
        price = Decimal(SYMBOLS[symbol] + rng.randint(-6, 6)) / 100
        order_id = f"o{i}"
        ids[symbol].append(order_id)
        if kind == "bad":
            bad: Command = {**base, "type": "new", "order_id": order_id, "side": side, "order_type": "limit",
                            "quantity": "3", "price": str(price)}
            flaw = rng.randint(0, 5)
            if flaw == 0:
                bad["price"] = "100.001"  # off tick
            elif flaw == 1:
                bad["price"] = str(price * 2 if side == "buy" else price / 2)  # through the collar
            elif flaw == 2:
                bad["quantity"] = "-1"
            elif flaw == 3:
                bad["symbol"] = "NOPE"
            elif flaw == 4:
                bad["ts"] = "yesterday"  # malformed: dropped
            else:
                bad["order_id"] = rng.choice(ids[symbol])  # a resend
            commands.append(bad)
            continue
        quantity = str(rng.randint(1, 12))
        if kind == "oco":
            step = Decimal(rng.randint(1, 4)) / 100
            take, stop = (price + step, price) if side == "sell" else (price, price + step)
            command = {**base, "type": "oco", "order_id": order_id, "side": side, "quantity": quantity,
                       "price": str(take), "stop_price": str(stop)}
            if rng.random() < 0.3:
                command["stop_limit_price"] = str(stop - step if side == "sell" else stop + step)
            ids[symbol].extend((f"{order_id}.tp", f"{order_id}.sl"))
            commands.append(command)
            continue
        command = {**base, "type": "new", "order_id": order_id, "side": side, "quantity": quantity}
        tif = rng.choice(("gtc", "gtc", "day", "gtd", "ioc", "fok"))
        command["time_in_force"] = tif
        if tif == "gtd":
            command["expire_at"] = stamp(minute + rng.randint(1, 5))
        if kind == "market":
            command["order_type"] = "market"
        elif kind == "stop":
            command["order_type"] = rng.choice(("stop", "stop_limit"))
            command["stop_price"] = str(price)
            if command["order_type"] == "stop_limit":
                command["price"] = str(price + Decimal(rng.randint(-2, 2)) / 100)
        else:
            command["order_type"] = "limit"
            command["price"] = str(price)
            if rng.random() < 0.2:
                command["display_quantity"] = str(rng.randint(1, 3))
            if tif not in ("ioc", "fok") and rng.random() < 0.15:
                command["post_only"] = True
        if rng.random() < 0.3:
            command["stp"] = rng.choice(STP_MODES)
        commands.append(command)
    return commands


def replay_in_child(journal: Path, events: Path, pure: bool) -> list[str]:
    env = {key: value for key, value in os.environ.items() if key != PURE_ENV}
    if pure:
        env[PURE_ENV] = "1"
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(journal), str(events)],
        env=env, capture_output=True, text=True, timeout=300, check=True,
    )
    return done.stdout.split()


@pytest.mark.skipif(not compiled_available(), reason="the Cython extension is not built (no C compiler at install)")
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_compiled_and_pure_engines_replay_a_journal_byte_identically(seed: int, tmp_path: Path) -> None:
    # GIVEN a random journal with every command type and instruction, over two symbols
    journal = tmp_path / "commands.jsonl"
    journal.write_text("".join(json.dumps(command) + "\n" for command in random_journal(seed, 4_000)))
    # WHEN the compiled engine and the pure Python engine each replay it in their own process
    compiled = replay_in_child(journal, tmp_path / "compiled.jsonl", pure=False)
    pure = replay_in_child(journal, tmp_path / "pure.jsonl", pure=True)
    # THEN each ran the implementation asked for, and the event streams are byte-identical
    assert compiled[0] == "compiled"
    assert pure[0] == "pure"
    assert compiled[1:] == pure[1:]
    output = (tmp_path / "compiled.jsonl").read_bytes()
    assert output == (tmp_path / "pure.jsonl").read_bytes()
    # AND the journal exercised what it is meant to: trades, every refusal kind, expiries, triggers
    kinds = {json.loads(line)["type"] for line in output.splitlines()}
    assert {"accepted", "trade", "cancelled", "expired", "replaced", "triggered", "rejected", "book",
            "cancel_rejected", "replace_rejected", "trading_status"} <= kinds
    assert int(compiled[3]) > 0  # malformed commands were dropped by both
    assert any(b'"reason":"entry_incomplete"' in line for line in output.splitlines())  # fences refused entries


@pytest.mark.parametrize(("value", "pure"), [("", False), ("0", False), ("1", True)])
def test_the_pure_engine_is_asked_for_with_1(monkeypatch: pytest.MonkeyPatch, value: str, pure: bool) -> None:
    monkeypatch.setenv(PURE_ENV, value)
    assert pure_requested() is pure


@pytest.mark.parametrize("value", ["true", "yes", "2", " 1"])
def test_any_other_setting_of_the_pure_engine_flag_is_an_error(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv(PURE_ENV, value)
    with pytest.raises(ValueError, match=PURE_ENV):
        pure_requested()


def build_folder(folder: Path, built: dict[str, int]) -> None:
    """Every core module's ``.py`` and ``.pxd`` at time 1000, and an extension module for each name
    in ``built`` with that modification time."""
    from importlib.machinery import EXTENSION_SUFFIXES

    for name in CORE_MODULES:
        for suffix in (".py", ".pxd"):
            path = folder / f"{name}{suffix}"
            path.write_text("")
            os.utime(path, (1000, 1000))
    for name, mtime in built.items():
        path = folder / f"{name}{EXTENSION_SUFFIXES[0]}"
        path.write_bytes(b"")
        os.utime(path, (mtime, mtime))


@pytest.mark.parametrize(
    ("built", "stale"),
    [
        ({name: 2000 for name in CORE_MODULES}, []),  # a whole, fresh build
        ({}, []),  # no build at all (no C compiler): the pure engine, no warning
        ({**{name: 2000 for name in CORE_MODULES}, "market": 500}, ["market"]),  # edited since the build
        ({name: 2000 for name in CORE_MODULES if name != "render"}, ["render"]),  # a partial build
    ],
)
def test_a_stale_or_missing_extension_of_any_core_module_is_found(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, built: dict[str, int], stale: list[str]
) -> None:
    import nexus_matching

    # GIVEN the sources of every core module and the extension modules of some
    build_folder(tmp_path, built)
    monkeypatch.setattr(nexus_matching, "_FOLDER", str(tmp_path))
    # WHEN the package looks for extension modules it must not use
    # THEN it finds exactly those older than their sources, or missing beside others
    assert nexus_matching._stale_extensions() == stale


def test_setup_and_the_package_read_the_same_list_of_compiled_modules() -> None:
    import runpy

    import nexus_matching

    # GIVEN the file setup.py reads by path (the package is not importable before it is installed)
    path = Path(nexus_matching.__file__).parent / "core_modules.py"
    # WHEN it is read as setup.py reads it
    listed = runpy.run_path(str(path))["CORE_MODULES"]
    # THEN it is the package's list, and every listed module has its source beside it
    assert listed == CORE_MODULES
    assert all((path.parent / f"{name}.py").is_file() for name in listed)
