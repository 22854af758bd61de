"""Snapshots are JSON, carry the thresholds, and refuse another detector's state."""

from __future__ import annotations

import json

import pytest
from nexus_surveillance.detectors import DETECTORS, SpoofingDetector, SpoofingThresholds, WashTradingDetector
from nexus_surveillance.scan import build_detectors
from nexus_surveillance.tape import Tape
from pydantic import ValidationError
from surv_world import D, at, decoded


def test_every_detector_snapshot_is_json_and_restores_to_the_same_snapshot() -> None:
    # GIVEN every detector midway through a little flow
    tape = Tape()
    for i in range(5):
        tape.new("XYZ", f"B{i}", "acc_a", "buy", D("10.00") - D("0.01") * i, D(2000), at(i))
        tape.new("XYZ", f"S{i}", "acc_b", "sell", D("10.00"), D(100), at(10 + i))
        tape.trade("XYZ", at(10 + i), D("10.00"), D(100), "sell", (f"S{i}", "acc_b"), (f"B{i}", "acc_a"),
                   maker_remaining=D(1900))
    events = decoded(tape)
    for detector in build_detectors():
        for e in events:
            detector.on_event(e)
        # WHEN snapshotted through JSON and restored into a fresh one
        snap = json.loads(json.dumps(detector.snapshot()))
        fresh = type(detector)()
        fresh.restore(snap)
        # THEN its snapshot is the same
        assert fresh.snapshot() == detector.snapshot(), detector.name


def test_a_snapshot_keeps_the_thresholds_and_refuses_another_detector() -> None:
    spoof = SpoofingDetector(SpoofingThresholds(min_quantity=D(50)))
    snap = spoof.snapshot()
    fresh = SpoofingDetector()
    fresh.restore(snap)
    assert fresh.thresholds.min_quantity == D(50)
    with pytest.raises(ValueError):
        WashTradingDetector().restore(snap)


def test_thresholds_are_typed_and_bounded() -> None:
    assert set(DETECTORS) == {"spoofing", "layering", "wash_trading", "momentum_ignition", "marking_the_close",
                              "quote_stuffing"}
    with pytest.raises(ValidationError):
        SpoofingThresholds(min_quantity=D(-1))
    with pytest.raises(ValidationError):
        SpoofingThresholds(max_lifetime_ms=10**12)
    with pytest.raises(ValidationError):
        SpoofingThresholds.model_validate({"min_quantity": "1000", "surprise": 1})
    with pytest.raises(ValueError):
        build_detectors({"not_a_detector": {}})


def test_set_thresholds_applies_to_the_next_event() -> None:
    # GIVEN a spoof of 800 shares, under the default size
    tape = Tape()
    tape.new("XYZ", "RB", "acc_a", "buy", D("9.99"), D(100), at(0))
    tape.new("XYZ", "SP", "acc_a", "sell", D("10.01"), D(800), at(10))
    tape.new("XYZ", "HIT", "acc_x", "sell", D("9.99"), D(100), at(300))
    tape.trade("XYZ", at(300), D("9.99"), D(100), "sell", ("HIT", "acc_x"), ("RB", "acc_a"))
    tape.cancel("XYZ", "SP", "acc_a", D(800), at(600))
    detector = SpoofingDetector()
    events = decoded(tape)
    for e in events[:1]:
        detector.on_event(e)
    # WHEN compliance lowers the size before the spoof arrives
    detector.set_thresholds({"min_quantity": "500"})
    alerts = [a for e in events[1:] for a in detector.on_event(e)]
    # THEN it is caught
    assert [a.evidence["order_ids"] for a in alerts] == [["SP"]]
