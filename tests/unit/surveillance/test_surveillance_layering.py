"""Layering (FINRA 5210 pattern A): layers on one side, an execution on the other, layers cancelled."""

from __future__ import annotations

from nexus_surveillance.detectors import LayeringDetector, LayeringThresholds
from nexus_surveillance.tape import Tape
from surv_world import D, at, decoded, run

OWNERS = {"acc_l": "u_l", "acc_l2": "u_l", "acc_x": "u_x", "acc_mm": "u_mm"}


def episode(tape: Tape, *, layers: int = 4, levels: int = 4, cancel_after_ms: int = 2_000, cancelled: int = 4,
            real_account: str = "acc_l") -> None:
    """Buys layered under the market at ``levels`` prices, the owner's sell fills, buys cancelled."""
    for i in range(layers):
        price = D("99.90") - D("0.01") * (i % levels)
        tape.new("XYZ", f"L{i}", "acc_l", "buy", price, D(500), at(i * 100))
    tape.new("XYZ", "REAL", real_account, "sell", D("100.00"), D(300), at(1_000))
    tape.new("XYZ", "LIFT", "acc_x", "buy", D("100.00"), D(300), at(1_500))
    tape.trade("XYZ", at(1_500), D("100.00"), D(300), "buy", ("LIFT", "acc_x"), ("REAL", real_account))
    for i in range(cancelled):
        tape.cancel("XYZ", f"L{i}", "acc_l", D(500), at(1_500 + cancel_after_ms + i))


def test_layers_cancelled_after_an_opposite_execution_raise_one_alert() -> None:
    # GIVEN four buys at four prices, the owner's sell (on a second account) executes, the buys go
    tape = Tape()
    episode(tape, real_account="acc_l2")
    # WHEN / THEN one HIGH alert with the layered orders, the trade and both accounts
    alerts = run(LayeringDetector(), decoded(tape, OWNERS))
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.severity, alert.users, alert.accounts) == ("HIGH", ["u_l"], ["acc_l", "acc_l2"])
    assert alert.evidence["layer_side"] == "buy" and alert.evidence["levels"] == 3
    assert alert.evidence["order_ids"] == ["L0", "L1", "L2"]


def test_near_misses_raise_nothing() -> None:
    cases = {
        "two levels only": {"levels": 2},
        "two orders only": {"layers": 2, "cancelled": 2},
        "cancelled after the window": {"cancel_after_ms": LayeringThresholds().cancel_window_ms + 1},
        "too few cancelled": {"cancelled": 2},
    }
    for label, kwargs in cases.items():
        tape = Tape()
        episode(tape, **kwargs)  # type: ignore[arg-type]
        assert run(LayeringDetector(), decoded(tape, OWNERS)) == [], label


def test_a_two_sided_ladder_requoted_after_a_fill_is_not_layering() -> None:
    # GIVEN a market maker with three levels on each side: an ask fills, the bids are requoted
    tape = Tape()
    for i in range(3):
        tape.new("XYZ", f"B{i}", "acc_mm", "buy", D("99.99") - D("0.01") * i, D(500), at(i))
        tape.new("XYZ", f"S{i}", "acc_mm", "sell", D("100.01") + D("0.01") * i, D(500), at(10 + i))
    tape.new("XYZ", "LIFT", "acc_x", "buy", D("100.01"), D(500), at(1_000))
    tape.trade("XYZ", at(1_000), D("100.01"), D(500), "buy", ("LIFT", "acc_x"), ("S0", "acc_mm"))
    for i in range(3):
        tape.cancel("XYZ", f"B{i}", "acc_mm", D(500), at(1_200 + i))
    # WHEN / THEN
    assert run(LayeringDetector(), decoded(tape, OWNERS)) == []
