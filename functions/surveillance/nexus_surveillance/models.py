"""Wire models of the surveillance API (requests validated with these; responses documented)."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import UTC, datetime
from typing import Any, Literal

from nexus_common.errors import ValidationFailed
from pydantic import BaseModel, ConfigDict, Field

_ID = r"^[A-Za-z0-9_.:-]{1,128}$"
_SYMBOL = r"^[A-Z0-9.]{1,12}$"


class AlertsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    status: Literal["open", "acknowledged", "escalated", "closed"] | None = None
    detector: str | None = Field(default=None, pattern=r"^[a-z_]{1,40}$")
    severity: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"] | None = None
    symbol: str | None = Field(default=None, pattern=_SYMBOL)
    account: str | None = Field(default=None, pattern=_ID)
    from_: str | None = Field(default=None, alias="from", min_length=1, max_length=40)
    to: str | None = Field(default=None, min_length=1, max_length=40)
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = Field(default=None, min_length=1, max_length=1000)


class AlertOut(BaseModel):
    alert_id: str
    detector: str
    severity: str
    symbol: str
    accounts: list[str]
    users: list[str]
    window_start: str
    window_end: str
    score: str
    evidence: dict[str, Any]
    status: str
    version: int
    history: list[dict[str, Any]]
    detected_at: str
    halted_accounts: list[str]


class AlertsPage(BaseModel):
    alerts: list[AlertOut]
    cursor: str | None = None


class AlertDetail(AlertOut):
    orders: list[dict[str, Any]]
    trades: list[dict[str, Any]]


class AlertEnvelope(BaseModel):
    alert: AlertDetail


class AlertActionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    note: str = Field(min_length=1, max_length=2000)
    resume_trading: bool = False  # close only: switch back on the accounts this alert halted


class AlertChanged(AlertOut):
    resumed_accounts: list[str]


class AlertChangedEnvelope(BaseModel):
    alert: AlertChanged


class ThresholdsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    thresholds: dict[str, Any] = Field(max_length=50)
    note: str = Field(default="", max_length=2000)
    expected_version: int | None = Field(default=None, ge=0, le=10**9)


class ThresholdsOut(BaseModel):
    detector: str
    version: int
    thresholds: dict[str, Any]
    history: list[dict[str, Any]]


class ProfileQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lookback_days: int = Field(default=30, ge=1, le=90)


class ProfileOut(BaseModel):
    user_id: str
    accounts: list[str]
    lookback_days: int
    start: str
    end: str
    orders: int
    orders_traded: int
    order_to_trade_ratio: str | None
    cancelled: int
    cancel_rate: str | None
    cancel_timing_ms: dict[str, int | None]
    self_trades: int
    volume_by_symbol: list[dict[str, Any]]
    alerts: list[dict[str, Any]]
    alerts_truncated: bool
    history_truncated: bool


class ScanRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    from_: str = Field(alias="from", min_length=1, max_length=40)
    to: str = Field(min_length=1, max_length=40)
    symbols: list[str] = Field(default_factory=list, max_length=50)
    users: list[str] = Field(default_factory=list, max_length=50)


class ScanQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    limit: int = Field(default=100, ge=1, le=500)


class ScanOut(BaseModel):
    scan_id: str
    status: str
    from_: str = Field(alias="from")
    to: str
    symbols: list[str]
    users: list[str]
    requested_by: str
    requested_at: str
    events: int
    alert_count: int
    history_truncated: bool
    error: str | None = None
    alerts: list[AlertOut] = Field(default_factory=list)


class ScanEnvelope(BaseModel):
    scan: ScanOut


# -- parsing helpers ------------------------------------------------------------------------------


def parse_instant(text: str, field: str) -> datetime:
    """An instant with a zone (or a date, midnight UTC), tz-aware UTC; 400 otherwise."""
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValidationFailed("invalid_field", f"{field}: not an ISO-8601 instant", field) from None
    if value.tzinfo is None and len(text) != 10:
        raise ValidationFailed("invalid_field", f"{field}: give the zone (e.g. Z)", field)
    if not 2000 <= value.year <= 2200:  # a date too: bounded before any date arithmetic
        raise ValidationFailed("invalid_field", f"{field}: out of range", field)
    if value.tzinfo is None:  # a date: midnight UTC
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def encode_cursor(key: dict[str, Any], bound: str, end: str | None = None) -> str:
    """A cursor resuming after ``key`` for the query ``bound``; ``end``: the window end the first
    page resolved (now, when the query gave no ``to``), reused by the next pages."""
    data: dict[str, Any] = {"k": key, "q": bound}
    if end is not None:
        data["e"] = end
    return base64.urlsafe_b64encode(json.dumps(data, default=str).encode()).decode()


def cursor_end(cursor: str) -> datetime:
    """The window end a cursor carries (see ``encode_cursor``); 400 ``invalid_cursor`` without one."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        end = datetime.fromisoformat(str(data["e"]).replace("Z", "+00:00"))
        ok = end.tzinfo is not None and 2000 <= end.year <= 2200
    except (ValueError, KeyError, TypeError, binascii.Error):
        ok = False
    if not ok:
        raise ValidationFailed("invalid_cursor", "the cursor is not from this query", "cursor")
    return end.astimezone(UTC)


def decode_cursor(cursor: str, bound: str) -> dict[str, Any]:
    """The key a cursor resumes after; 400 ``invalid_cursor`` for one not made by this query."""
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        key = data["k"]
        ok = data.get("q") == bound and isinstance(key, dict) and set(key) == {"alert_id", "feed", "sort"}
    except (ValueError, KeyError, TypeError, binascii.Error):
        ok = False
    if not ok:
        raise ValidationFailed("invalid_cursor", "the cursor is not from this query", "cursor")
    return {k: str(v) for k, v in key.items()}
