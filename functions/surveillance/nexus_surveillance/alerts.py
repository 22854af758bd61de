"""Alerts as stored and shown, and their workflow. Pure: no boto3.

An alert item (``SurveillanceAlertsTable``) is the library's ``Alert`` plus:

* ``status`` (``open`` -> ``acknowledged`` -> ``escalated`` -> ``closed``), ``version`` (each
  change +1, the condition of the next), ``history`` (who, when, what, note);
* ``feed``/``sort`` (the by-time index: ``sort`` = "<window end>#<alert id>");
* ``detected_at`` (the consumer's clock) and ``dispatched_at`` (set once the alert was
  published, audited, notified and, CRITICAL, its accounts halted: a redelivery of an alert
  stored but not dispatched dispatches it again; every step is idempotent).
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any, Final

from nexus_common.errors import Conflict
from nexus_common.events import iso
from nexus_common.money import fmt

from nexus_surveillance.detectors import Alert

STATUSES: Final = ("open", "acknowledged", "escalated", "closed")
SEVERITIES: Final = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
FEED: Final = "alerts"

# action -> (statuses it may start from, status it leads to)
TRANSITIONS: Final[dict[str, tuple[tuple[str, ...], str]]] = {
    "acknowledge": (("open",), "acknowledged"),
    "escalate": (("open", "acknowledged"), "escalated"),
    "close": (("open", "acknowledged", "escalated"), "closed"),
}


def _plain(value: Any) -> Any:
    """JSON-able values with every number a Decimal (DynamoDB takes no float)."""
    return json.loads(json.dumps(value, default=str), parse_float=Decimal)


def alert_item(alert: Alert, detected_at: datetime, source: str = "live") -> dict[str, Any]:
    wire = alert.model_dump(mode="json")
    end = iso(alert.window_end)
    return {
        "alert_id": alert.id,
        "detector": alert.detector,
        "severity": alert.severity,
        "symbol": alert.symbol,
        "accounts": list(alert.accounts),
        "users": list(alert.users),
        "window_start": iso(alert.window_start),
        "window_end": end,
        "score": Decimal(str(alert.score)),
        "evidence": _plain(wire["evidence"]),
        "status": "open",
        "version": 1,
        "history": [],
        "feed": FEED,
        "sort": f"{end}#{alert.id}",
        "detected_at": iso(detected_at),
        "source": source,
    }


def alert_view(item: dict[str, Any]) -> dict[str, Any]:
    """What the API shows of an alert item."""
    return {
        "alert_id": str(item["alert_id"]),
        "detector": str(item["detector"]),
        "severity": str(item["severity"]),
        "symbol": str(item["symbol"]),
        "accounts": [str(a) for a in item.get("accounts") or []],
        "users": [str(u) for u in item.get("users") or []],
        "window_start": str(item["window_start"]),
        "window_end": str(item["window_end"]),
        "score": str(item.get("score", "0")),
        "evidence": _wire(item.get("evidence") or {}),
        "status": str(item.get("status", "open")),
        "version": int(item.get("version", 1)),
        "history": _wire(item.get("history") or []),
        "detected_at": str(item.get("detected_at", "")),
        "halted_accounts": [str(a) for a in item.get("halted_accounts") or []],
    }


def _wire(value: Any) -> Any:
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, dict):
        return {str(k): _wire(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_wire(v) for v in value]
    return value


def next_status(action: str, current: str) -> str:
    """The status ``action`` leads to from ``current``; 409 ``invalid_transition`` if none."""
    allowed, target = TRANSITIONS[action]
    if current not in allowed:
        raise Conflict("invalid_transition", f"an alert {current} cannot be {target}", "status")
    return target


def evidence_ids(evidence: Any) -> tuple[list[str], list[str]]:
    """The order ids and trade ids named anywhere in an alert's evidence (keys ``*order_id*`` /
    ``*order_ids*``, ``*trade_id*`` / ``*trade_ids*``), in first-seen order."""
    orders: dict[str, None] = {}
    trades: dict[str, None] = {}

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, (list, tuple)):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and value:
            if "trade" in key:
                trades.setdefault(value, None)
            elif "order" in key:
                orders.setdefault(value, None)

    walk(evidence)
    return list(orders), list(trades)
