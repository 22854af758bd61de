"""Venues as data, and the simulated venue on the real matching core: fees exact, latency seeded,
resting orders filled by a seeded flow with the fill model's probability; the internal venue's
adapter."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from nexus_common.errors import ValidationFailed
from nexus_routing.model import ChildOrder, ExecStatus, Liquidity, Side, VenueBook
from nexus_routing.venues import (
    FillModelSpec,
    FillProbabilityModel,
    InternalVenue,
    LatencyModel,
    LatencySpec,
    SimulatedVenue,
    Venue,
)
from routing_world import INSTRUMENTS, SYMBOL, Clock, quote, venue

D = Decimal


def sim(name: str = "Alpha", taker: str = "0.003", rebate: str = "0.002", **extra: Any) -> SimulatedVenue:
    return SimulatedVenue(venue(name, "XALP", taker, rebate, **extra), INSTRUMENTS, Clock())


# -- venues as data --------------------------------------------------------------------------


def test_a_venue_row_round_trips_with_decimals_as_strings() -> None:
    row = venue("Alpha", "XALP", "0.003", "0.0020").to_item()
    assert row["fees"] == {"taker_fee": "0.003", "maker_rebate": "0.0020"}
    assert (row["name"], row["mic"], row["kind"], row["enabled"]) == ("Alpha", "XALP", "simulated", True)
    assert Venue.from_item(row) == venue("Alpha", "XALP", "0.003", "0.0020")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"mic": "xalp"}, "mic"),
        ({"mic": "XALPS"}, "mic"),
        ({"kind": "dark"}, "kind"),
        ({"name": ""}, "name"),
        ({"fees": {"taker_fee": "0.0031"}}, "fees.taker_fee"),
        ({"fees": {"maker_rebate": "-0.01"}}, "fees.maker_rebate"),
        ({"fees": {"taker_fee": 0.003}}, "fees.taker_fee"),
        ({"fees": {"taker_fee": "1e999999"}}, "fees.taker_fee"),
        ({"latency": {"base_us": -1}}, "latency.base_us"),
        ({"latency": {"tail_probability": "1.5"}}, "latency.tail_probability"),
        ({"fill_model": {"turnover": "0"}}, "fill_model.turnover"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_venue_row_is_refused_naming_its_field(change: dict[str, Any], field: str) -> None:
    row = {**venue("Alpha", "XALP").to_item(), **change}
    with pytest.raises(ValidationFailed) as caught:
        Venue.from_item(row)
    assert caught.value.field == field and caught.value.status == 400


# -- models ----------------------------------------------------------------------------------


def test_the_latency_model_is_seeded_and_bounded() -> None:
    spec = LatencySpec(base_us=400, jitter_us=100, tail_probability=D("0.1"), tail_us=5000, seed=3)
    first, second = LatencyModel(spec), LatencyModel(spec)
    samples = [first.sample() for _ in range(500)]
    assert samples == [second.sample() for _ in range(500)]
    assert all(400 <= s < 500 or 5400 <= s < 5500 for s in samples)
    assert 10 < sum(s >= 5400 for s in samples) < 100
    assert first.expected_us == 400 + 50 + 500


def test_the_fill_model_decays_behind_the_touch_and_with_the_queue_ahead() -> None:
    model = FillProbabilityModel(FillModelSpec(touch_probability=D("0.8"), decay_per_tick=D("0.5"), turnover=D(1000)))
    assert model.probability(0, D(0), D(100)) == pytest.approx(0.8)
    assert model.probability(2, D(0), D(100)) == pytest.approx(0.2)
    assert model.probability(0, D(1900), D(100)) == pytest.approx(0.4)
    assert model.probability(-1, D(10_000), D(100)) == 1.0


# -- the simulated venue ---------------------------------------------------------------------


def test_a_taker_pays_the_taker_fee_and_the_resting_maker_gets_its_rebate_exactly() -> None:
    # GIVEN a market maker offering 100 at 300.00 and 100 at 300.01 on Alpha
    alpha = sim()
    quote(alpha, "a0", Side.SELL, "300.00", 100)
    quote(alpha, "a1", Side.SELL, "300.01", 100)
    # WHEN the router buys 150 IOC up to 300.01
    report = alpha.submit(ChildOrder("c1", SYMBOL, Side.BUY, D(150), D("300.01"), parent_id="P"))
    # THEN it fills 100 at 300.00 and 50 at 300.01, paying 0.003 a share, exactly
    assert report.status is ExecStatus.FILLED and report.parent_id == "P"
    assert [(f.price, f.quantity, f.liquidity, f.fee) for f in report.fills] == [
        (D("300.00"), D(100), Liquidity.TAKER, D("0.300")), (D("300.01"), D(50), Liquidity.TAKER, D("0.150")),
    ]
    assert report.notional == D("45000.50") and report.fees == D("0.45")
    assert report.to_dict()["fills"][1] == {"price": "300.01", "quantity": "50", "liquidity": "taker", "fee": "0.15"}
    assert report.to_dict()["ts"] == "2026-11-02T15:30:00.000000Z" and report.to_dict()["status"] == "filled"
    # AND the makers' reports carry their rebates
    makers = alpha.drain_reports()
    assert [(r.order_id, r.status, r.fees) for r in makers] == [
        ("Alpha-a0", ExecStatus.FILLED, D("-0.200")), ("Alpha-a1", ExecStatus.PARTIALLY_FILLED, D("-0.100")),
    ]
    assert alpha.depth(SYMBOL) == VenueBook("Alpha", SYMBOL, (), alpha.depth(SYMBOL).asks)
    assert [(lv.price, lv.quantity) for lv in alpha.depth(SYMBOL).asks] == [(D("300.01"), D(50))]


def test_an_ioc_remainder_is_cancelled_and_a_refused_order_is_rejected() -> None:
    alpha = sim()
    quote(alpha, "a0", Side.SELL, "300.00", 100)
    report = alpha.submit(ChildOrder("c1", SYMBOL, Side.BUY, D(250), D("300.00")))
    assert (report.status, report.cum_quantity, report.leaves_quantity, report.reason) == (
        ExecStatus.CANCELLED, D(100), D(0), "ioc")
    off_tick = alpha.submit(ChildOrder("c2", SYMBOL, Side.BUY, D(10), D("300.005")))
    assert (off_tick.status, off_tick.reason) == (ExecStatus.REJECTED, "price_off_tick")
    duplicate = alpha.submit(ChildOrder("c1", SYMBOL, Side.BUY, D(10), D("300.00")))
    assert (duplicate.status, duplicate.reason) == (ExecStatus.REJECTED, "duplicate_order_id")
    with pytest.raises(ValidationFailed) as caught:
        alpha.submit(ChildOrder("c3", "AAPL", Side.BUY, D(10), D("1.00")))
    assert caught.value.field == "symbol"


def test_a_resting_order_rests_is_cancelled_and_reports_latency_from_its_seed() -> None:
    # GIVEN two venues with the same latency seed
    alpha, twin = sim(latency={"seed": 11}), sim(latency={"seed": 11})
    # WHEN an order rests and is cancelled on each
    reports = []
    for v in (alpha, twin):
        rested = v.submit(ChildOrder("r1", SYMBOL, Side.BUY, D(100), D("299.00"), "gtc"))
        cancelled = v.cancel(SYMBOL, "r1")
        reports.append((rested, cancelled))
    # THEN it rests, then is cancelled, and both venues report the same latencies
    rested, cancelled = reports[0]
    assert (rested.status, rested.leaves_quantity) == (ExecStatus.NEW, D(100))
    assert cancelled is not None and (cancelled.status, cancelled.leaves_quantity) == (ExecStatus.CANCELLED, D(0))
    assert [r.latency_us for r in reports[0] if r] == [r.latency_us for r in reports[1] if r]
    assert alpha.cancel(SYMBOL, "r1") is None and alpha.depth(SYMBOL).bids == ()


def test_the_simulated_flow_fills_resting_orders_through_the_book_with_the_model_probability() -> None:
    # GIVEN a venue whose fill model always fills at the touch and never a tick behind it, a
    # market maker's bid and ours at 299.99, and ours at 299.97
    alpha = sim(fill_model={"touch_probability": "1", "decay_per_tick": "0", "turnover": "1000000"})
    quote(alpha, "b0", Side.BUY, "299.99", 100)
    ours = alpha.submit(ChildOrder("r1", SYMBOL, Side.BUY, D(50), D("299.99"), "gtc", parent_id="P"))
    behind = alpha.submit(ChildOrder("r2", SYMBOL, Side.BUY, D(50), D("299.97"), "gtc", parent_id="P"))
    assert ours.status is behind.status is ExecStatus.NEW
    # WHEN one horizon of flow runs
    sent = alpha.simulate_flow(SYMBOL)
    # THEN the orders at the touch are met through the book (the market maker's first: price-time
    # priority), and the order two ticks behind the touch is not (probability 0)
    assert sent == 2
    reports = alpha.drain_reports()
    assert [(r.order_id, r.status) for r in reports] == [
        ("Alpha-b0", ExecStatus.FILLED), ("r1", ExecStatus.FILLED),
    ]
    assert reports[1].fills[0].liquidity is Liquidity.MAKER and reports[1].fees == D("-0.002") * 50
    assert alpha.live_orders() == {"r2": D(50)}


def test_the_simulated_flow_is_seeded() -> None:
    # GIVEN two identical venues with a coin-flip fill model and the same resting orders
    runs = []
    for _ in range(2):
        alpha = sim(fill_model={"touch_probability": "0.5", "decay_per_tick": "1", "turnover": "1000000",
                                "seed": 5})
        for k in range(20):
            alpha.submit(ChildOrder(f"r{k:02d}", SYMBOL, Side.BUY, D(10), D("299.00") - k * D("0.01"), "gtc"))
        # WHEN the flow runs three horizons
        fills = [alpha.simulate_flow(SYMBOL) for _ in range(3)]
        runs.append((fills, sorted(alpha.live_orders())))
    # THEN both fill the same orders, some but not all
    assert runs[0] == runs[1]
    assert 0 < sum(runs[0][0]) < 20


def test_fill_probability_reads_the_venue_book() -> None:
    alpha = sim(fill_model={"touch_probability": "0.5", "decay_per_tick": "0.5", "turnover": "100"})
    quote(alpha, "b0", Side.BUY, "299.99", 100)
    quote(alpha, "a0", Side.SELL, "300.01", 100)
    assert alpha.fill_probability(SYMBOL, Side.BUY, D("300.01"), D(10)) == 1.0  # marketable
    assert alpha.fill_probability(SYMBOL, Side.BUY, D("299.99"), D(100)) == pytest.approx(0.5 * 100 / 200)
    assert alpha.fill_probability(SYMBOL, Side.BUY, D("299.97"), D(100)) == pytest.approx(0.125 * 100 / 200)


# -- the internal venue ----------------------------------------------------------------------


def test_the_internal_venue_is_the_same_interface_over_the_platform_port() -> None:
    # GIVEN a port (here an in-process engine) behind the internal venue's configuration
    port = sim("Nexus engine", taker="0", rebate="0")
    quote(port, "a0", Side.SELL, "300.00", 100)
    nexus = InternalVenue(venue("Nexus", "NEXS", kind="internal"), port)
    # WHEN the router reads its book and sends it an order
    assert nexus.quote(SYMBOL).venue == "Nexus" and nexus.quote(SYMBOL).asks[0].price == D("300.00")
    report = nexus.submit(ChildOrder("c1", SYMBOL, Side.BUY, D(40), D("300.00")))
    # THEN the port executes it
    assert report.status is ExecStatus.FILLED and report.filled_quantity == D(40)
    assert nexus.tick_size(SYMBOL) == D("0.01") and len(nexus.drain_reports()) == 1
    with pytest.raises(ValidationFailed):
        InternalVenue(venue("Nexus", "NEXS"), port)


def test_an_accounts_live_orders_are_cancelled_except_those_kept() -> None:
    # GIVEN two resting orders of the market maker and one of another account
    alpha = sim()
    quote(alpha, "mm-1", Side.BUY, "99.00", 10, account="mm")
    quote(alpha, "mm-2", Side.SELL, "101.00", 10, account="mm")
    quote(alpha, "other", Side.BUY, "98.00", 10, account="acc_1")
    # WHEN the market maker's orders are cancelled, keeping mm-2
    cancelled = alpha.cancel_account("mm", keep={"Alpha-mm-2"})
    # THEN only mm-1 went; the kept one and the other account's order rest
    assert cancelled == ["Alpha-mm-1"]
    assert set(alpha.live_orders()) == {"Alpha-mm-2", "Alpha-other"}
