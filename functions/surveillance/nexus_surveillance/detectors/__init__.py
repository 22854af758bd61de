"""The pattern detectors: one class per pattern, each with its typed thresholds."""

from __future__ import annotations

from nexus_surveillance.detectors.base import Alert, PatternDetector, Severity, Thresholds, alert_id
from nexus_surveillance.detectors.spoofing import SpoofingDetector, SpoofingThresholds
from nexus_surveillance.detectors.wash_trading import WashTradingDetector, WashTradingThresholds

DETECTORS: dict[str, type[PatternDetector]] = {  # type: ignore[type-arg]
    cls.name: cls
    for cls in (
        SpoofingDetector,
        WashTradingDetector,
    )
}

__all__ = [
    "DETECTORS",
    "Alert",
    "PatternDetector",
    "Severity",
    "SpoofingDetector",
    "SpoofingThresholds",
    "Thresholds",
    "WashTradingDetector",
    "WashTradingThresholds",
    "alert_id",
]
