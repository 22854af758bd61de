"""Spoofing: large orders cancelled quickly without execution while the owner trades the other way."""

from __future__ import annotations

from decimal import Decimal

from nexus_surveillance.detectors import SpoofingDetector, SpoofingThresholds
from nexus_surveillance.tape import Tape
from surv_world import D, at, decoded, run

SPOOF_QTY = Decimal(5000)
REAL_QTY = Decimal(100)
OWNERS = {"acc_s1": "u_spoof", "acc_s2": "u_spoof", "acc_x": "u_x", "acc_mm": "u_mm"}


def episode(
    tape: Tape,
    *,
    spoof_qty: Decimal = SPOOF_QTY,
    lifetime_ms: int = 800,
    real_qty: Decimal = REAL_QTY,
    fill_at_ms: int = 300,
    real_account: str = "acc_s1",
    orders: int = 2,
    symbol: str = "XYZ",
) -> None:
    """The spoofer rests ``orders`` large sells above the market, its real buy fills, the sells go."""
    tape.new(symbol, "RB", real_account, "buy", D("99.95"), real_qty, at(0))
    for i in range(orders):
        tape.new(symbol, f"SP{i}", "acc_s1", "sell", D("100.05") + D("0.01") * i, spoof_qty, at(10 + i))
    tape.new(symbol, "HIT", "acc_x", "sell", D("99.95"), real_qty, at(fill_at_ms))
    tape.trade(symbol, at(fill_at_ms), D("99.95"), real_qty, "sell", ("HIT", "acc_x"), ("RB", real_account))
    for i in range(orders):
        tape.cancel(symbol, f"SP{i}", "acc_s1", spoof_qty, at(10 + i + lifetime_ms))


def test_large_sells_cancelled_while_the_owner_buys_raise_one_alert() -> None:
    # GIVEN a spoofing episode whose real buy is on another account of the same owner
    tape = Tape()
    episode(tape, real_account="acc_s2")
    # WHEN the detector sees it
    alerts = run(SpoofingDetector(), decoded(tape, OWNERS))
    # THEN one HIGH alert names the owner, both accounts, a spoof order and the real trade
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.detector, alert.severity, alert.symbol, alert.users) == ("spoofing", "HIGH", "XYZ", ["u_spoof"])
    assert alert.accounts == ["acc_s1", "acc_s2"]
    assert alert.evidence["order_ids"] == ["SP0"] and alert.evidence["trade_ids"] == ["XYZ-5"]
    assert alert.evidence["cancelled_quantity"] == "5000" and alert.status == "open"


def cancelled_then_hit(hit_ms: int) -> Tape:
    """acc_s1 bids 100 and offers a spoof of 5,000, cancels the spoof at 500 ms, and its bid is
    hit ``hit_ms`` after the start."""
    tape = Tape()
    tape.new("XYZ", "RB", "acc_s1", "buy", D("99.95"), D(100), at(0))
    tape.new("XYZ", "SP", "acc_s1", "sell", D("100.05"), D(5000), at(10))
    tape.cancel("XYZ", "SP", "acc_s1", D(5000), at(500))
    tape.new("XYZ", "HIT", "acc_x", "sell", D("99.95"), D(100), at(hit_ms))
    tape.trade("XYZ", at(hit_ms), D("99.95"), D(100), "sell", ("HIT", "acc_x"), ("RB", "acc_s1"))
    return tape


def test_a_counterpart_fill_just_after_the_cancel_completes_the_alert() -> None:
    # GIVEN the spoof is cancelled before the real buy fills (1.5 s later, within the post window)
    tape = cancelled_then_hit(2000)
    # WHEN / THEN the alert comes with the fill
    alerts = run(SpoofingDetector(), decoded(tape, OWNERS))
    assert [a.evidence["order_ids"] for a in alerts] == [["SP"]]


def test_near_misses_just_under_each_threshold_raise_nothing() -> None:
    t = SpoofingThresholds()
    cases = {
        "lived too long": {"lifetime_ms": t.max_lifetime_ms + 1},
        "not large": {"spoof_qty": t.min_quantity - 1, "real_qty": D(10)},
        "size ratio under": {"spoof_qty": D(1000), "real_qty": D(334), "orders": 1},
    }
    for label, kwargs in cases.items():
        # GIVEN an episode just under one threshold
        tape = Tape()
        episode(tape, **kwargs)  # type: ignore[arg-type]
        # WHEN / THEN nothing is raised
        assert run(SpoofingDetector(), decoded(tape, OWNERS)) == [], label


def test_counterpart_fill_after_the_post_window_is_not_spoofing() -> None:
    tape = cancelled_then_hit(2501)
    assert run(SpoofingDetector(), decoded(tape, OWNERS)) == []


def test_benign_look_alikes_raise_nothing() -> None:
    # GIVEN a market maker whose equal two-sided quotes are filled on one side and pulled on the other
    tape = Tape()
    for i in range(50):
        t0 = i * 400
        tape.new("XYZ", f"B{i}", "acc_mm", "buy", D("99.99"), D(1500), at(t0))
        tape.new("XYZ", f"S{i}", "acc_mm", "sell", D("100.01"), D(1500), at(t0 + 1))
        tape.new("XYZ", f"H{i}", "acc_x", "sell", D("99.99"), D(1500), at(t0 + 100))
        tape.trade("XYZ", at(t0 + 100), D("99.99"), D(1500), "sell", (f"H{i}", "acc_x"), (f"B{i}", "acc_mm"))
        tape.cancel("XYZ", f"S{i}", "acc_mm", D(1500), at(t0 + 200))
    # AND a large order withdrawn quickly by a trader who trades nothing else
    tape.new("XYZ", "BIG", "acc_x", "buy", D("99.00"), D(20000), at(30000))
    tape.cancel("XYZ", "BIG", "acc_x", D(20000), at(30300))
    # WHEN / THEN
    assert run(SpoofingDetector(), decoded(tape, OWNERS)) == []


def test_the_same_episode_replayed_gives_the_same_alert_id() -> None:
    tape = Tape()
    episode(tape, orders=2)
    events = decoded(tape, OWNERS)
    first = run(SpoofingDetector(), events)
    again = run(SpoofingDetector(), events + events)
    assert [a.id for a in first] == [a.id for a in again] and len(first) == 1


def test_large_orders_on_three_price_levels_are_left_to_the_layering_detector() -> None:
    # GIVEN the spoofer's large sells stand on three prices at once
    tape = Tape()
    episode(tape, orders=3)
    # WHEN / THEN spoofing stays silent (layering raises the alert: test_surveillance_layering)
    assert run(SpoofingDetector(), decoded(tape, OWNERS)) == []
    assert len(run(SpoofingDetector(SpoofingThresholds(max_levels=3)), decoded(tape, OWNERS))) == 1
