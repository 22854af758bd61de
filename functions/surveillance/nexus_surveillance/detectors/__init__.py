"""The pattern detectors: one class per pattern, each with its typed thresholds."""

from __future__ import annotations

from nexus_surveillance.detectors.base import Alert, PatternDetector, Severity, Thresholds, alert_id
from nexus_surveillance.detectors.layering import LayeringDetector, LayeringThresholds
from nexus_surveillance.detectors.marking_the_close import MarkingTheCloseDetector, MarkingTheCloseThresholds
from nexus_surveillance.detectors.momentum_ignition import MomentumIgnitionDetector, MomentumIgnitionThresholds
from nexus_surveillance.detectors.quote_stuffing import QuoteStuffingDetector, QuoteStuffingThresholds
from nexus_surveillance.detectors.spoofing import SpoofingDetector, SpoofingThresholds
from nexus_surveillance.detectors.wash_trading import WashTradingDetector, WashTradingThresholds

DETECTORS: dict[str, type[PatternDetector]] = {  # type: ignore[type-arg]
    cls.name: cls
    for cls in (
        SpoofingDetector,
        LayeringDetector,
        WashTradingDetector,
        MomentumIgnitionDetector,
        MarkingTheCloseDetector,
        QuoteStuffingDetector,
    )
}

__all__ = [
    "DETECTORS",
    "Alert",
    "LayeringDetector",
    "LayeringThresholds",
    "MarkingTheCloseDetector",
    "MarkingTheCloseThresholds",
    "MomentumIgnitionDetector",
    "MomentumIgnitionThresholds",
    "PatternDetector",
    "QuoteStuffingDetector",
    "QuoteStuffingThresholds",
    "Severity",
    "SpoofingDetector",
    "SpoofingThresholds",
    "Thresholds",
    "WashTradingDetector",
    "WashTradingThresholds",
    "alert_id",
]
