"""Momentum ignition: a sweep through several levels, then a quick fill the other way at the moved price."""

from __future__ import annotations

from decimal import Decimal

from nexus_surveillance.detectors import MomentumIgnitionDetector
from nexus_surveillance.tape import Tape
from surv_world import D, at, decoded, run

STEP = Decimal("0.05")
START = Decimal("100.00")
OWNERS = {"acc_m": "u_m", "acc_m2": "u_m", "acc_x": "u_x", "acc_y": "u_y"}


def sweep(tape: Tape, levels: int = 4, step: Decimal = STEP, start: Decimal = START) -> Decimal:
    """acc_m buys through ``levels`` resting sells of acc_x; returns the last price."""
    tape.new("XYZ", "SWEEP", "acc_m", "buy", start + step * levels, D(100) * levels, at(0))
    price = start
    for i in range(levels):
        price = start + step * i
        remaining = D(100) * (levels - i - 1)
        tape.trade("XYZ", at(0), price, D(100), "buy", ("SWEEP", "acc_m"), (f"R{i}", "acc_x"),
                   taker_remaining=remaining)
    return price


def unwind(tape: Tape, price: Decimal, qty: Decimal, ms: int, account: str = "acc_m") -> None:
    tape.new("XYZ", "OUT", account, "sell", price, qty, at(ms))
    tape.new("XYZ", "FOMO", "acc_y", "buy", price, qty, at(ms + 10))
    tape.trade("XYZ", at(ms + 10), price, qty, "buy", ("FOMO", "acc_y"), ("OUT", account))


def test_a_sweep_then_a_sale_at_the_moved_price_raises_an_alert() -> None:
    # GIVEN a sweep of four levels (100.00 -> 100.15, 15 bps) and a sale at 100.12 from a second account
    tape = Tape()
    sweep(tape)
    unwind(tape, D("100.12"), D(300), 5_000, account="acc_m2")
    # WHEN / THEN
    alerts = run(MomentumIgnitionDetector(), decoded(tape, OWNERS))
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.severity, alert.users, alert.accounts) == ("HIGH", ["u_m"], ["acc_m", "acc_m2"])
    assert alert.evidence["start_price"] == "100.00" and alert.evidence["moved_to"] == "100.15"
    assert alert.evidence["trade_ids"] == ["XYZ-2", "XYZ-3", "XYZ-4", "XYZ-5"]


def test_near_misses_raise_nothing() -> None:
    cases = [
        ("two levels", dict(levels=2, step=D("0.10")), D("100.09"), D(200), 5_000),
        ("move under 10 bps", dict(levels=4, step=D("0.03")), D("100.09"), D(300), 5_000),
        ("sold too late", dict(), D("100.12"), D(300), 30_001),
        ("sold below half the move", dict(), D("100.07"), D(300), 5_000),
        ("sold too little", dict(), D("100.12"), D(100), 5_000),
    ]
    for label, kwargs, price, qty, ms in cases:
        tape = Tape()
        sweep(tape, **kwargs)  # type: ignore[arg-type]
        unwind(tape, price, qty, ms)
        assert run(MomentumIgnitionDetector(), decoded(tape, OWNERS)) == [], label


def test_a_sweep_that_is_kept_is_not_ignition() -> None:
    # GIVEN an institutional buyer sweeping and then buying more, never selling
    tape = Tape()
    sweep(tape)
    tape.new("XYZ", "MORE", "acc_m", "buy", D("100.20"), D(100), at(5_000))
    tape.trade("XYZ", at(5_000), D("100.20"), D(100), "buy", ("MORE", "acc_m"), ("R9", "acc_x"))
    assert run(MomentumIgnitionDetector(), decoded(tape, OWNERS)) == []
