"""Wash trading: one owner on both sides (CRITICAL), and pairs of accounts that round-trip."""

from __future__ import annotations

from collections import deque
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from nexus_surveillance.detectors import WashTradingDetector
from nexus_surveillance.tape import Tape
from surv_world import D, at, decoded, run

OWNERS = {"acc_w1": "u_w", "acc_w2": "u_w", "acc_a": "u_a", "acc_b": "u_b", "acc_mm": "u_mm", "acc_c": "u_c"}


def cross(tape: Tape, n: int, ms: int, buyer: str, seller: str, qty: str = "100", price: str = "50.00") -> None:
    tape.new("XYZ", f"M{n}", seller, "sell", D(price), D(qty), at(ms))
    tape.new("XYZ", f"T{n}", buyer, "buy", D(price), D(qty), at(ms + 5))
    tape.trade("XYZ", at(ms + 5), D(price), D(qty), "buy", (f"T{n}", buyer), (f"M{n}", seller))


def test_one_owner_on_both_sides_across_accounts_is_critical() -> None:
    # GIVEN a user's two accounts trade with each other three times in a minute
    tape = Tape()
    for i in range(3):
        cross(tape, i, i * 10_000, "acc_w1", "acc_w2")
    # WHEN the detector sees it
    alerts = run(WashTradingDetector(), decoded(tape, OWNERS))
    # THEN one CRITICAL alert (the episode), naming the owner, both accounts and the first trade
    assert len(alerts) == 1
    alert = alerts[0]
    assert (alert.severity, alert.users, alert.accounts) == ("CRITICAL", ["u_w"], ["acc_w1", "acc_w2"])
    assert alert.evidence["kind"] == "same_owner_across_accounts"
    assert alert.evidence["trade_ids"] == ["XYZ-3"]


def test_a_self_trade_in_one_account_is_critical_even_without_an_owners_map() -> None:
    tape = Tape()
    cross(tape, 0, 0, "acc_c", "acc_c")
    alerts = run(WashTradingDetector(), decoded(tape))
    assert [(a.severity, a.evidence["kind"]) for a in alerts] == [("CRITICAL", "same_owner")]


def test_a_new_same_owner_episode_after_the_gap_is_a_new_alert() -> None:
    tape = Tape()
    cross(tape, 0, 0, "acc_w1", "acc_w2")
    cross(tape, 1, 60_006, "acc_w2", "acc_w1")
    assert len(run(WashTradingDetector(), decoded(tape, OWNERS))) == 2


def test_two_accounts_round_tripping_with_each_other_raise_a_pair_alert() -> None:
    # GIVEN two owners buy from and sell back to each other twice, alike in size and price
    tape = Tape()
    cross(tape, 0, 0, "acc_a", "acc_b", "300", "50.00")
    cross(tape, 1, 5_000, "acc_b", "acc_a", "300", "50.02")
    cross(tape, 2, 20_000, "acc_a", "acc_b", "120", "50.01")
    cross(tape, 3, 30_000, "acc_b", "acc_a", "125", "50.00")
    # WHEN / THEN one HIGH round-trip alert names both
    alerts = run(WashTradingDetector(), decoded(tape, OWNERS))
    assert [(a.severity, a.evidence["kind"], a.evidence["round_trips"]) for a in alerts] == [("HIGH", "round_trip", 2)]
    assert alerts[0].users == ["u_a", "u_b"]


def test_round_trip_near_misses_raise_nothing() -> None:
    cases = {
        "one round trip only": [("acc_a", "acc_b", "300"), ("acc_b", "acc_a", "300"), ("acc_a", "acc_b", "100")],
        "sizes differ by more than 10 %": [("acc_a", "acc_b", "300"), ("acc_b", "acc_a", "300"),
                                          ("acc_a", "acc_b", "100"), ("acc_b", "acc_a", "112")],
    }
    for label, legs in cases.items():
        tape = Tape()
        for i, (buyer, seller, qty) in enumerate(legs):
            cross(tape, i, i * 5_000, buyer, seller, qty)
        assert run(WashTradingDetector(), decoded(tape, OWNERS)) == [], label


def test_a_market_maker_round_tripping_with_many_clients_is_not_a_pair() -> None:
    # GIVEN the market maker buys and sells alike sizes with a client, amid trades with others
    tape = Tape()
    n = 0
    for i in range(4):
        buyer, seller = ("acc_a", "acc_mm") if i % 2 == 0 else ("acc_mm", "acc_a")
        cross(tape, n, i * 10_000, buyer, seller)
        n += 1
        for other in ("acc_b", "acc_c"):
            cross(tape, n, i * 10_000 + 1_000, other, "acc_mm")
            n += 1
    # WHEN / THEN the client's side is all with the maker, but the maker's is not all with it
    assert run(WashTradingDetector(), decoded(tape, OWNERS)) == []


def _match_by_scan(detector: WashTradingDetector, trades: list[Any]) -> list[Any]:
    """The round-trip matching as a scan of every unmatched trade (the rule, written plainly)."""
    t = detector.thresholds
    open_: list[Any] = []
    matched = []
    for trade in trades:
        hit = -1
        for i, prior in enumerate(open_):
            if prior[1] == trade[1]:
                continue
            big = max(prior[2], trade[2])
            if big <= 0 or abs(prior[2] - trade[2]) > big * t.max_quantity_diff:
                continue
            if prior[3] > 0 and abs(prior[3] - trade[3]) * 10_000 > prior[3] * t.max_price_diff_bps:
                continue
            hit = i
            break
        if hit >= 0:
            matched.append((open_.pop(hit), trade))
        else:
            open_.append(trade)
    return matched


_trades = st.lists(st.tuples(st.sampled_from(["acc_a", "acc_b", "acc_c"]), st.integers(0, 12), st.integers(4990, 5010)),
                   max_size=60)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_trades)
def test_round_trips_are_matched_as_a_scan_of_every_unmatched_trade_matches_them(drawn: list[Any]) -> None:
    # GIVEN any run of trades between accounts, alike or not in quantity (0 included) and price
    trades = [(i, buyer, D(qty), D(cents) / 100, f"t{i}") for i, (buyer, qty, cents) in enumerate(drawn)]
    detector = WashTradingDetector()
    # WHEN they are matched
    # THEN each trade meets the earliest unmatched fit the other way round, as the plain scan finds it
    assert detector._match(deque(trades)) == _match_by_scan(detector, trades)


def test_one_way_trades_of_a_pair_are_matched_without_scanning_the_unmatched_ones() -> None:
    # GIVEN a pair's full window of trades, all one way (nothing to match)
    detector = WashTradingDetector()
    trades = deque((i, "acc_a", D(100), D(50), f"t{i}") for i in range(detector.thresholds.max_pair_trades))
    compared = []
    original = detector._alike
    detector._alike = lambda prior, trade: compared.append(1) or original(prior, trade)  # type: ignore[method-assign]
    # WHEN they are matched, THEN nothing matches, and no two trades were compared
    assert detector._match(trades) == []
    assert compared == []
