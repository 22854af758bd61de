"""Marking the close: aggressive trading in the last minutes that moves the closing price."""

from __future__ import annotations

from decimal import Decimal

from nexus_surveillance.detectors import MarkingTheCloseDetector, MarkingTheCloseThresholds
from nexus_surveillance.tape import Tape
from surv_world import MS, D, decoded, run

# 2026-01-05 is a Monday; 16:00 in New York is 21:00 UTC that day (EST).
CLOSE = 1_767_646_800_000_000_000
MIN = 60_000 * MS
LOT = Decimal(100)
OWNERS = {"acc_c": "u_c", "acc_x": "u_x", "acc_y": "u_y"}


def trade(tape: Tape, n: int, ts: int, taker: str, side: str, price: Decimal, qty: Decimal = LOT) -> None:
    tape.new("XYZ", f"T{n}", taker, side, price, qty, ts)
    tape.trade("XYZ", ts, price, qty, side, (f"T{n}", taker), (f"M{n}", "acc_y"))


def day(tape: Tape, closing_buys: list[tuple[int, Decimal]], taker: str = "acc_c") -> None:
    trade(tape, 0, CLOSE - 30 * MIN, "acc_x", "buy", D("50.00"))
    trade(tape, 1, CLOSE - 4 * MIN, "acc_x", "sell", D("50.00"))
    for i, (ms_before, price) in enumerate(closing_buys):
        trade(tape, 10 + i, CLOSE - ms_before * MS, taker, "buy", price)


def test_the_close_is_sixteen_hundred_in_new_york_across_dst() -> None:
    detector = MarkingTheCloseDetector()
    assert detector.close_of(CLOSE - MIN) == CLOSE
    july = 1_783_022_400_000_000_000  # 2026-07-02T20:00:00Z = 16:00 EDT
    assert detector.close_of(july - 1) == july
    assert detector.close_of(CLOSE) > CLOSE


def test_aggressive_buys_in_the_last_minutes_that_lift_the_close_raise_an_alert_at_flush() -> None:
    # GIVEN a trader lifts 50.00 to 50.20 with three buys in the last two minutes
    tape = Tape()
    day(tape, [(120_000, D("50.05")), (60_000, D("50.12")), (1_000, D("50.20"))])
    # WHEN the detector runs and the close passes
    detector = MarkingTheCloseDetector()
    before = run(detector, decoded(tape, OWNERS), flush_at=CLOSE - 1)
    alerts = detector.flush(CLOSE)
    # THEN nothing before the close, one alert after it, naming the owner and the 40 bps move
    assert before == []
    assert [(a.users, a.evidence["move_bps"], a.evidence["side"]) for a in alerts] == [(["u_c"], "40.0", "buy")]


def test_the_next_event_after_the_close_judges_the_window_as_flush_would() -> None:
    tape = Tape()
    day(tape, [(120_000, D("50.05")), (1_000, D("50.20"))])
    trade(tape, 99, CLOSE + 10 * MIN, "acc_x", "sell", D("50.10"))
    alerts = run(MarkingTheCloseDetector(), decoded(tape, OWNERS))
    flushed = MarkingTheCloseDetector()
    run(flushed, decoded(tape, OWNERS)[:-2])
    assert [a.id for a in alerts] == [a.id for a in flushed.flush(CLOSE)] and len(alerts) == 1


def test_near_misses_raise_nothing() -> None:
    t = MarkingTheCloseThresholds()
    cases = {
        "move under 12 bps": [(120_000, D("50.03")), (1_000, D("50.05"))],
        "one trade only": [(1_000, D("50.20"))],
        "before the window": [(t.window_ms + 1_000, D("50.10")), (t.window_ms + 500, D("50.20"))],
    }
    for label, buys in cases.items():
        tape = Tape()
        day(tape, buys)
        assert run(MarkingTheCloseDetector(), decoded(tape, OWNERS), flush_at=CLOSE) == [], label


def test_a_small_share_of_a_busy_close_is_not_marking() -> None:
    # GIVEN the price rises at the close on many traders' buys, the suspect's part is small
    tape = Tape()
    trade(tape, 0, CLOSE - 30 * MIN, "acc_x", "buy", D("50.00"))
    trade(tape, 1, CLOSE - 120_000 * MS, "acc_c", "buy", D("50.05"))
    for i in range(6):
        trade(tape, 50 + i, CLOSE - (100_000 - i * 1_000) * MS, f"acc_b{i}", "buy", D("50.10"))
    trade(tape, 2, CLOSE - 1_000 * MS, "acc_c", "buy", D("50.20"))
    assert run(MarkingTheCloseDetector(), decoded(tape, OWNERS), flush_at=CLOSE) == []
