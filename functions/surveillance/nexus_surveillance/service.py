"""The surveillance application layer: the live consumer's batch, the alert workflow, thresholds,
profiles and scans. Handlers call these; I/O goes through ``ports``/``repo``."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from nexus_common.audit import AuditEvent, AuditSink
from nexus_common.errors import Conflict, NotFound, ValidationFailed
from nexus_common.events import iso, utc_now
from nexus_common.identity import Principal
from nexus_common.jsonutil import loads
from nexus_common.logging import get_logger
from nexus_common.money import fmt
from pydantic import ValidationError

from nexus_surveillance.alerts import TRANSITIONS, alert_item, alert_view, evidence_ids, next_status
from nexus_surveillance.detectors import DETECTORS, Alert
from nexus_surveillance.events import DecodeError, SurvEvent, from_execution_event, from_order_command
from nexus_surveillance.history import account_ids, history_events
from nexus_surveillance.live import SNAPSHOT_EVERY_EVENTS, SymbolDetectors, journal_entry
from nexus_surveillance.ports import (
    AlertEffects,
    AlertStore,
    BatchProgress,
    OwnerDirectory,
    SymbolStateStore,
    ThresholdsSource,
)
from nexus_surveillance.profile import trading_profile

logger = get_logger()
SOURCE: Final = "surveillance"
MAX_AUDIT_LINKS: Final = 20
REDISPATCH_AFTER: Final = timedelta(minutes=5)  # longer than a batch runs (Timeout 60 s)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


# -- the live path ------------------------------------------------------------------------------


@dataclass
class BatchOutcome:
    failed: list[str] = field(default_factory=list)  # record ids to report (from the first poison one)
    events: int = 0
    alerts: list[str] = field(default_factory=list)  # ids of the alerts the batch raised (new or not)
    dispatched: list[str] = field(default_factory=list)


def _accounts_of(payload: Any) -> set[str]:
    found: set[str] = set()
    rows = payload.get("events") if isinstance(payload, dict) and isinstance(payload.get("events"), list) else [payload]
    for row in rows:
        if isinstance(row, dict):
            for name in ("account_id", "maker_account_id", "taker_account_id"):
                value = row.get(name)
                if isinstance(value, str) and value:
                    found.add(value)
    return found


@dataclass
class _InMemory:
    gen: int  # the generation these detectors are at (Redis: ``gen:<symbol>``)
    detectors: SymbolDetectors
    journaled: int  # events in the Redis journal since the last snapshot


class LiveSurveillance:
    """One batch of ``order-commands`` or ``execution-events`` records (see on_streams.py)."""

    def __init__(self, state: SymbolStateStore, owners: OwnerDirectory, thresholds: ThresholdsSource,
                 store: AlertStore, effects: AlertEffects,
                 clock: Callable[[], datetime] = utc_now) -> None:  # fmt: skip
        self.state = state
        self.owners = owners
        self.thresholds = thresholds
        self.store = store
        self.effects = effects
        self.clock = clock
        self._memory: dict[str, _InMemory] = {}  # a warm container's detectors, by symbol

    def process(self, records: list[tuple[str, bytes]], commands: bool, shard: str = "") -> BatchOutcome:
        """One batch of ``shard`` (an ``execution-events`` batch's commit records how far the
        consumer has got in that shard, and its lag: ``BatchProgress``)."""
        outcome = BatchOutcome()
        payloads: list[tuple[str, Any]] = []
        stop: int | None = None
        for index, (record_id, data) in enumerate(records):
            try:
                payloads.append((record_id, loads(data)))
            except ValueError as exc:
                logger.error("unreadable record", extra={"record": record_id, "error": str(exc)[:200]})
                stop = index
                break
        owners = self.owners.owners(set().union(*(_accounts_of(p) for _, p in payloads)) if payloads else set())
        by_symbol: dict[str, list[SurvEvent]] = {}
        for index, (record_id, payload) in enumerate(payloads):
            try:
                if commands:
                    one = from_order_command(payload, owners)
                    decoded = [one] if one is not None else []
                else:
                    decoded = from_execution_event(payload, owners)
            except DecodeError as exc:
                logger.error("undecodable record", extra={"record": record_id, "error": str(exc)[:200]})
                stop = index
                break
            for event in decoded:
                if event.symbol:
                    by_symbol.setdefault(event.symbol, []).append(event)
        if stop is not None:
            outcome.failed = [record_id for record_id, _ in records[stop:]]
        # commands carry no engine sequence and the detectors skip them (the engine echoes each
        # with a sequenced event): a symbol with nothing sequenced costs nothing
        live = {s: evs for s, evs in by_symbol.items() if any(e.seq > 0 for e in evs)}
        outcome.events = sum(len(v) for v in by_symbol.values())
        if not live:
            return outcome
        progress = None
        if not commands:
            newest = max(e.ts for evs in live.values() for e in evs if e.seq > 0)
            at = self.clock()
            at_ns = (at - _EPOCH) // timedelta(microseconds=1) * 1000
            progress = BatchProgress(shard or "-", newest, (at_ns - newest) // 1_000_000, len(records), at,
                                     tuple(sorted(live)))  # fmt: skip
        outcome.alerts, outcome.dispatched = self._step(live, None, progress)
        return outcome

    def flush(self, now_ns: int, chunk: int = 50, symbols: list[str] | None = None) -> list[str]:
        """Close the windows that ended by ``now_ns`` of every symbol (or of ``symbols``): marking
        the close is judged once the close has passed, even if the symbol trades no more that
        day. Returns the ids of the alerts raised."""
        raised: list[str] = []
        chosen = self.state.symbols() if symbols is None else symbols
        for start in range(0, len(chosen), chunk):
            ids, _ = self._step({s: [] for s in chosen[start : start + chunk]}, now_ns)
            raised += ids
        return raised

    def flush_behind_consumer(self, grace_ns: int) -> list[str]:
        """The scheduled flush: each symbol's windows close up to how far the live consumer has
        got in the symbol's shard (its event-time high-water mark) minus ``grace_ns``, never by
        the wall clock: a consumer that is behind holds the flush back, so an event still on its
        way cannot miss a window closed without it. A symbol whose shard has recorded no progress
        waits. Returns the ids of the alerts raised."""
        marks, shard_of = self.state.progress()
        by_until: dict[int, list[str]] = {}
        for symbol in self.state.symbols():
            mark = marks.get(shard_of.get(symbol, ""))
            if mark is not None and mark - grace_ns > 0:
                by_until.setdefault(mark - grace_ns, []).append(symbol)
        raised: list[str] = []
        for until in sorted(by_until):
            raised += self.flush(until, symbols=by_until[until])
        return raised

    def _step(self, live: Mapping[str, list[SurvEvent]], flush_ns: int | None,
              progress: BatchProgress | None = None) -> tuple[list[str], list[str]]:  # fmt: skip
        """Apply each symbol's events (and a flush), store and dispatch the alerts, commit."""
        try:
            with self.state.locked(live) as gens:
                thresholds = {k: _stored(v) for k, v in self.thresholds.current().items()}
                stale = [s for s in live if s not in self._memory or self._memory[s].gen != gens[s]]
                for symbol, (snapshot, journal) in (self.state.load(stale) if stale else {}).items():
                    self._memory[symbol] = _InMemory(gens[symbol], SymbolDetectors.restored(snapshot, journal),
                                                     sum(len(e.get("e") or []) for e in journal))  # fmt: skip
                alerts: list[Alert] = []
                commits: dict[str, tuple[int, dict[str, Any], dict[str, Any] | None]] = {}
                for symbol in sorted(live):
                    held = self._memory[symbol]
                    events = live[symbol]
                    held.detectors.use(thresholds)
                    alerts.extend(held.detectors.apply(events))
                    if flush_ns is not None:
                        alerts.extend(held.detectors.flush(flush_ns))
                    held.journaled += max(1, len(events))
                    due = gens[symbol] == 0 or held.journaled >= SNAPSHOT_EVERY_EVENTS
                    snapshot = held.detectors.snapshot() if due else None
                    commits[symbol] = (gens[symbol] + 1, journal_entry(thresholds, events, flush_ns), snapshot)
                    if due:
                        held.journaled = 0
                dispatched = self.dispatch(alerts)
                # after the alerts are stored and dispatched: a crash before it re-applies the batch
                self.state.commit(commits, progress)
                for symbol, (gen, _, _) in commits.items():
                    self._memory[symbol].gen = gen
                return [a.id for a in alerts], dispatched
        except BaseException:  # any failure, cancellation included: memory rolled back, re-raised
            for symbol in live:  # applied in memory but not committed: restore from Redis next time
                self._memory.pop(symbol, None)
            raise

    def dispatch(self, alerts: list[Alert]) -> list[str]:
        """Store each alert once (conditional put per id) and set in motion what a new alert
        does; an alert stored before but never dispatched (a crash in between) is dispatched now."""
        if not alerts:
            return []
        now = self.clock()
        todo: list[dict[str, Any]] = []
        for alert in alerts:
            item = alert_item(alert, now)
            old = self.store.put_new(item)
            if old is None:
                todo.append(item)
            elif not old.get("dispatched_at"):
                todo.append({**item, **old})
        return self._dispatch_items(todo, now)

    def redispatch(self, since: datetime) -> list[str]:
        """Dispatch the stored alerts with a window ending since ``since`` that were never
        dispatched (their batch failed after storing them, e.g. the alerts stream kept refusing
        and the batch went to the DLQ). Run by the per-minute flush; an alert detected in the last
        ``REDISPATCH_AFTER`` is left to the batch that may still be dispatching it."""
        now = self.clock()
        return self._dispatch_items(self.store.undispatched(since, now - REDISPATCH_AFTER), now)

    def _dispatch_items(self, todo: list[dict[str, Any]], now: datetime) -> list[str]:
        if not todo:
            return []
        views = [alert_view(i) for i in todo]
        # the halt first, straight after the alert is stored: a stream or queue that keeps
        # failing must not leave a CRITICAL alert's accounts trading
        halted: dict[str, list[str]] = {}
        for view in views:
            if view["severity"] == "CRITICAL" and view["status"] != "closed":
                halt_audit: list[AuditEvent] = []
                for account in view["accounts"]:
                    if self.effects.halt(account, view["alert_id"], now):
                        halted.setdefault(view["alert_id"], []).append(account)
                        halt_audit.append(halt_audit_event(account, view["alert_id"], now))
                self.store.mark_halted(view["alert_id"], halted.get(view["alert_id"], []))
                self.effects.audit(halt_audit)
        self.effects.publish(views)
        self.effects.audit([alert_audit_event(view, now) for view in views])
        self.effects.notify_compliance(views, now)
        for view in views:
            self.store.mark_dispatched(view["alert_id"], now, halted.get(view["alert_id"], []))
        logger.info("surveillance alerts", extra={"alerts": [v["alert_id"] for v in views], "halted": halted})
        return [v["alert_id"] for v in views]


def alert_audit_event(view: Mapping[str, Any], at: datetime) -> AuditEvent:
    orders, trades = evidence_ids(view.get("evidence") or {})
    links = [f"account:{a}" for a in view["accounts"]] + [f"order:{o}" for o in orders] + [f"trade:{t}" for t in trades]
    return AuditEvent(
        event_id=f"surveillance-alert-{view['alert_id']}",
        kind="surveillance_alert",
        aggregate_type="surveillance_alert",
        aggregate_id=view["alert_id"],
        ts=at,
        actor="surveillance",
        source=SOURCE,
        links=tuple(links[:MAX_AUDIT_LINKS]),
        details={
            "detector": view["detector"], "severity": view["severity"], "symbol": view["symbol"],
            "accounts": ",".join(view["accounts"]), "users": ",".join(view["users"]), "score": view["score"],
            "window_start": view["window_start"], "window_end": view["window_end"],
        },
    )  # fmt: skip


def halt_audit_event(account_id: str, alert_id: str, at: datetime) -> AuditEvent:
    """The kill switch's own audit fact (the same kind the admin API writes), by surveillance."""
    return AuditEvent(
        event_id=f"surveillance-halt-{alert_id}-{account_id}",
        kind="kill_switch_on",
        aggregate_type="account",
        aggregate_id=account_id,
        ts=at,
        actor="surveillance",
        source=SOURCE,
        links=(f"surveillance_alert:{alert_id}",),
        details={"reason": alert_id, "alert_id": alert_id},
    )


# -- the alert workflow (API) -------------------------------------------------------------------


class AlertWorkflow:
    def __init__(self, store: Any, kill_switch: Any, audit: AuditSink, lookups: Any,
                 clock: Callable[[], datetime] = utc_now) -> None:  # fmt: skip
        self.store = store
        self.kill_switch = kill_switch
        self.audit = audit
        self.lookups = lookups
        self.clock = clock

    def get(self, alert_id: str) -> dict[str, Any]:
        item = self.store.get(alert_id)
        if item is None:
            raise NotFound("alert_not_found", "no such alert", "alert_id")
        return item

    def resolved(self, alert_id: str) -> dict[str, Any]:
        """The alert with its evidence resolved to the orders and trades it names."""
        view = alert_view(self.get(alert_id))
        order_ids, trade_ids = evidence_ids(view["evidence"])
        orders = {str(o["order_id"]): o for o in self.lookups.orders_by_id(order_ids)}
        trades = {f"{t['symbol']}-{int(t['seq'])}": t for t in self.lookups.trades_by_id(trade_ids)}
        view["orders"] = [_order_view(orders[o]) if o in orders else {"order_id": o, "found": False} for o in order_ids]
        view["trades"] = [_trade_view(trades[t]) if t in trades else {"trade_id": t, "found": False} for t in trade_ids]
        return view

    def act(self, alert_id: str, action: str, principal: Principal, note: str, resume_trading: bool) -> dict[str, Any]:
        if action not in TRANSITIONS:
            raise NotFound("route_not_found", "no such action")
        if resume_trading and action != "close":
            raise ValidationFailed("invalid_field", "resume_trading is for close only", "resume_trading")
        item = self.get(alert_id)
        current = str(item.get("status", "open"))
        target = next_status(action, current)
        now = self.clock()
        version = int(item.get("version", 1))
        entry = {"action": action, "from": current, "to": target, "by": principal.user_id, "at": iso(now), "note": note}
        if not self.store.transition(alert_id, TRANSITIONS[action][0], target, version, entry):
            raise Conflict("invalid_transition", "the alert changed meanwhile; read it again", "status")
        self.audit.publish(AuditEvent(
            event_id=f"surveillance-alert-{alert_id}-v{version + 1}", kind=f"surveillance_alert_{target}",
            aggregate_type="surveillance_alert", aggregate_id=alert_id, ts=now, actor=principal.user_id,
            source=SOURCE, details={"from": current, "to": target, "note": note},
        ))  # fmt: skip
        resumed: list[str] = []
        if resume_trading:
            for account in [str(a) for a in item.get("halted_accounts") or []]:
                if self.kill_switch.resume(account, alert_id):
                    resumed.append(account)
                    self.audit.publish(AuditEvent(
                        event_id=f"surveillance-resume-{alert_id}-{account}", kind="kill_switch_off",
                        aggregate_type="account", aggregate_id=account, ts=now, actor=principal.user_id,
                        source=SOURCE, links=(f"surveillance_alert:{alert_id}",),
                        details={"reason": f"closed {alert_id}: {note}"[:500], "alert_id": alert_id},
                    ))  # fmt: skip
        view = alert_view(self.get(alert_id))
        view["resumed_accounts"] = resumed
        return view


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return fmt(value)
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, set, tuple)):
        return [_plain(v) for v in value]
    return value


_ORDER_FIELDS: Final = ("order_id", "account_id", "symbol", "side", "order_type", "price", "quantity", "status",
                        "filled_quantity", "created_at", "updated_at")  # fmt: skip
_TRADE_FIELDS: Final = ("trade_id", "symbol", "seq", "price", "quantity", "aggressor_side", "ts")


def _order_view(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(item[k]) for k in _ORDER_FIELDS if k in item} | {"found": True}


def _trade_view(item: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _plain(item[k]) for k in _TRADE_FIELDS if k in item} | {"found": True}


# -- thresholds ---------------------------------------------------------------------------------


def _stored(value: Any) -> Any:
    """A thresholds value read back from DynamoDB as its model takes it (integers as int)."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and "." not in str(value) else str(value)
    if isinstance(value, dict):
        return {k: _stored(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stored(v) for v in value]
    return value


def detector_class(name: str) -> Any:
    cls = DETECTORS.get(name)
    if cls is None:
        raise NotFound("unknown_detector", f"no detector {name!r}; one of {', '.join(sorted(DETECTORS))}", "detector")
    return cls


class ThresholdsService:
    def __init__(self, repo: Any, audit: AuditSink, clock: Callable[[], datetime] = utc_now) -> None:
        self.repo = repo
        self.audit = audit
        self.clock = clock

    def get(self, detector: str) -> dict[str, Any]:
        cls = detector_class(detector)
        history = [
            {"version": int(h["version"]), "updated_by": str(h.get("updated_by", "")),
             "updated_at": str(h.get("updated_at", "")), "note": str(h.get("note", ""))}
            for h in self.repo.history(detector, limit=10)
        ]  # fmt: skip
        if not history:
            model = cls.thresholds_model()
            return {"detector": detector, "version": 0, "thresholds": model.model_dump(mode="json"), "history": []}
        latest = self.repo.history(detector, limit=1)[0]
        model = cls.thresholds_model.model_validate(_stored(latest["thresholds"]))
        return {"detector": detector, "version": int(latest["version"]), "thresholds": model.model_dump(mode="json"),
                "history": history}  # fmt: skip

    def put(self, detector: str, thresholds: dict[str, Any], note: str, principal: Principal,
            expected_version: int | None) -> dict[str, Any]:  # fmt: skip
        cls = detector_class(detector)
        try:
            model = cls.thresholds_model.model_validate(thresholds)
        except ValidationError as exc:
            first = exc.errors(include_url=False, include_input=False, include_context=False)[0]
            where = ".".join(str(p) for p in first["loc"])
            code = "unknown_field" if first["type"] == "extra_forbidden" else "invalid_field"
            raise ValidationFailed(code, f"thresholds.{where}: {first['msg']}", f"thresholds.{where}") from None
        latest = self.repo.history(detector, limit=1)
        version = (int(latest[0]["version"]) if latest else 0) + 1
        if expected_version is not None and expected_version != version - 1:
            raise Conflict("version_conflict", f"the thresholds are at version {version - 1}", "version")
        stored = json.loads(model.model_dump_json(), parse_float=Decimal)
        now = self.clock()
        if not self.repo.put_version(detector, version, stored, principal.user_id, note, now):
            raise Conflict("version_conflict", "another change was saved first; read and try again", "version")
        self.audit.publish(AuditEvent(
            event_id=f"surveillance-thresholds-{detector}-v{version}", kind="surveillance_thresholds_changed",
            aggregate_type="surveillance_thresholds", aggregate_id=detector, ts=now, actor=principal.user_id,
            source=SOURCE,
            details={"version": str(version), "thresholds": model.model_dump_json()[:2000], "note": note},
        ))  # fmt: skip
        return self.get(detector)


# -- profiles and scans ---------------------------------------------------------------------------

MAX_HISTORY_ITEMS: Final = 50_000


class ProfileService:
    def __init__(self, lookups: Any, history: Any, store: Any, clock: Callable[[], datetime] = utc_now) -> None:
        self.lookups = lookups
        self.history = history
        self.store = store
        self.clock = clock

    def profile(self, user_id: str, lookback_days: int) -> dict[str, Any]:
        user = self.lookups.user(user_id)
        if user is None:
            raise NotFound("user_not_found", "no such user", "user_id")
        accounts = [str(a) for a in user.get("accounts") or []]
        end = self.clock()
        start = end - timedelta(days=lookback_days)
        items, truncated = self.history.records(start, end, MAX_HISTORY_ITEMS)
        events, _ = history_events(items, {a: user_id for a in accounts})
        profile = trading_profile(user_id, accounts, events)
        alerts, more = self.store.list_page(start=iso(start), end=iso(end), filters={"user": user_id}, limit=100,
                                            after=None)  # fmt: skip
        profile.update(
            lookback_days=lookback_days, start=iso(start), end=iso(end), history_truncated=truncated,
            alerts=[{k: alert_view(a)[k] for k in ("alert_id", "detector", "severity", "symbol", "status",
                                                   "window_end")} for a in alerts],
            alerts_truncated=more is not None,
        )  # fmt: skip
        return profile


SCAN_TTL_DAYS: Final = 30


class ScanService:
    def __init__(self, scans: Any, clock: Callable[[], datetime] = utc_now) -> None:
        self.scans = scans
        self.clock = clock

    def start(self, principal: Principal, start: datetime, end: datetime, symbols: list[str], users: list[str],
              send: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
        scan_id = f"scan_{uuid.uuid4().hex}"
        now = self.clock()
        item = {
            "scan_id": scan_id, "status": "queued", "from": iso(start), "to": iso(end), "symbols": symbols,
            "users": users, "requested_by": principal.user_id, "requested_at": iso(now),
            "expires_at": int((now + timedelta(days=SCAN_TTL_DAYS)).timestamp()),
        }  # fmt: skip
        self.scans.create(item)
        send(scan_id)
        return scan_view(item)

    def get(self, scan_id: str, limit: int) -> dict[str, Any]:
        meta = self.scans.meta(scan_id)
        if meta is None:
            raise NotFound("scan_not_found", "no such scan", "scan_id")
        view = scan_view(meta)
        view["alerts"] = [alert_view(a) for a in self.scans.alerts(scan_id, limit)] if meta["status"] == "done" else []
        return view


def scan_view(item: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "scan_id": str(item["scan_id"]),
        "status": str(item["status"]),
        "from": str(item["from"]),
        "to": str(item["to"]),
        "symbols": [str(s) for s in item.get("symbols") or []],
        "users": [str(u) for u in item.get("users") or []],
        "requested_by": str(item.get("requested_by", "")),
        "requested_at": str(item.get("requested_at", "")),
        "events": int(item.get("events", 0)),
        "alert_count": int(item.get("alert_count", 0)),
        "history_truncated": bool(item.get("history_truncated", False)),
        "error": item.get("error"),
    }


def run_scan(scan_id: str, scans: Any, history: Any, owners: OwnerDirectory, thresholds: Mapping[str, Any],
             clock: Callable[[], datetime] = utc_now) -> dict[str, Any]:  # fmt: skip
    """The worker: read the stored history of the scan's range, run the library's ``scan()``,
    store its alerts. Idempotent: a scan done already is left as it is."""
    from nexus_surveillance.scan import scan

    meta = scans.meta(scan_id)
    if meta is None or meta["status"] == "done":
        return {"scan_id": scan_id, "skipped": True}
    scans.set_status(scan_id, "running")
    start = datetime.fromisoformat(str(meta["from"]).replace("Z", "+00:00"))
    end = datetime.fromisoformat(str(meta["to"]).replace("Z", "+00:00"))
    items, truncated = history.records(start, end, MAX_HISTORY_ITEMS * 4)
    owner_map = owners.owners(account_ids(items))
    symbols = frozenset(str(s) for s in meta.get("symbols") or []) or None
    events, unreadable = history_events(items, owner_map, symbols)
    # every owner's events of the scanned symbols are detected: a pattern is judged against the
    # whole market (the counterparty's other trades, every taker before the close); then only the
    # alerts naming one of the scan's users are kept
    alerts = scan(events, {k: _stored(v) for k, v in thresholds.items() if k in DETECTORS})
    wanted_users = {str(u) for u in meta.get("users") or []}
    if wanted_users:
        alerts = [a for a in alerts if wanted_users.intersection(a.users)]
    now = clock()
    scans.put_alerts(scan_id, [alert_item(a, now, source="scan") for a in alerts], int(meta.get("expires_at", 0)))
    scans.set_status(scan_id, "done", events=len(events), alert_count=len(alerts), history_truncated=truncated,
                     unreadable=unreadable, finished_at=iso(now))  # fmt: skip
    return {"scan_id": scan_id, "events": len(events), "alerts": len(alerts)}
