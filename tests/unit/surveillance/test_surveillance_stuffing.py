"""Quote stuffing: bursts of orders and cancels with a high order-to-trade ratio."""

from __future__ import annotations

from nexus_surveillance.detectors import QuoteStuffingDetector
from nexus_surveillance.tape import Tape
from surv_world import D, at, decoded, run


def burst(tape: Tape, orders: int, span_ms: int, fills: int = 0, account: str = "acc_q", start_ms: int = 0) -> None:
    """``orders`` orders each cancelled 1 ms later, spread over ``span_ms``; ``fills`` of them trade."""
    for i in range(orders):
        ms = start_ms + i * span_ms // orders
        oid = f"{account}-{start_ms}-{i}"
        tape.new("XYZ", oid, account, "buy", D("10.00"), D(1), at(ms))
        if i < fills:
            tape.trade("XYZ", at(ms), D("10.00"), D(1), "sell", (f"H{oid}", "acc_x"), (oid, account))
        else:
            tape.cancel("XYZ", oid, account, D(1), at(ms + 1))


def test_a_burst_of_order_and_cancel_raises_one_alert_across_a_second_boundary() -> None:
    # GIVEN 150 orders and 150 cancels in 600 ms, straddling a whole second of the clock
    tape = Tape()
    burst(tape, 150, 600, start_ms=700)
    # WHEN / THEN one MEDIUM alert
    alerts = run(QuoteStuffingDetector(), decoded(tape))
    assert [(a.severity, a.users, a.evidence["fills"]) for a in alerts] == [("MEDIUM", ["acc_q"], 0)]


def test_near_misses_raise_nothing() -> None:
    cases = {
        "199 messages in the window": (100, 1_000, 1),  # 100 orders, 99 cancels, one fill: 199 messages
        "ratio just under 20": (199, 900, 10),
    }
    for label, (orders, span, fills) in cases.items():
        tape = Tape()
        burst(tape, orders, span, fills)
        assert run(QuoteStuffingDetector(), decoded(tape)) == [], label


def test_a_busy_market_maker_requoting_every_few_ms_over_a_minute_is_not_stuffing() -> None:
    # GIVEN 40 messages a second for a minute (20 orders, 20 cancels)
    tape = Tape()
    for second in range(60):
        burst(tape, 20, 1_000, fills=1, account="acc_mm", start_ms=second * 1_000)
    assert run(QuoteStuffingDetector(), decoded(tape)) == []
