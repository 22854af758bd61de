"""Data access of the surveillance service: Redis (detector state), DynamoDB (alerts,
thresholds, scans, owners, the kill switch, the audit trail's time index), Kinesis (the
surveillance-alerts and audit-events streams) and SQS (notifications, scans)."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import Any, Final

from boto3.dynamodb.conditions import Attr, Key
from nexus_common import audit_items, aws, kinesis
from nexus_common.audit import AuditEvent
from nexus_common.dynamo import LazyTable, conditional, conditional_write, pages
from nexus_common.dynamo_batch import batch_get
from nexus_common.errors import Unavailable
from nexus_common.events import iso
from nexus_common.jsonutil import dumps, loads
from nexus_common.sqs import SqsBatchSender

from nexus_surveillance.alerts import FEED
from nexus_surveillance.ports import BatchProgress

CURRENT: Final = "current"  # the thresholds item holding every detector's version in force

# -- Redis: per-symbol detector state under a per-symbol lock --------------------------------

_UNLOCK: Final = """
for i, key in ipairs(KEYS) do
  if redis.call('get', key) == ARGV[1] then redis.call('del', key) end
end
return 0
"""


# with a batch's commit: the shard's high-water mark (only ever raised; in microseconds, exact
# in Lua's doubles), its symbols' shard, and the lag figures of the consumer
_PROGRESS: Final = """
local mark = tonumber(ARGV[2])
if mark > tonumber(redis.call('hget', KEYS[1], ARGV[1]) or '-1') then
  redis.call('hset', KEYS[1], ARGV[1], ARGV[2])
end
for i = 6, #ARGV do redis.call('hset', KEYS[2], ARGV[i], ARGV[1]) end
local lag = tonumber(ARGV[3])
redis.call('hset', KEYS[3], 'last_lag_ms', ARGV[3], 'last_records', ARGV[4], 'last_at', ARGV[5], 'last_shard', ARGV[1])
redis.call('hincrby', KEYS[3], 'batches', 1)
redis.call('hincrby', KEYS[3], 'records', ARGV[4])
redis.call('hincrby', KEYS[3], 'lag_sum_ms', ARGV[3])
if lag > tonumber(redis.call('hget', KEYS[3], 'max_lag_ms') or '-1e18') then
  redis.call('hset', KEYS[3], 'max_lag_ms', ARGV[3])
end
return 0
"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def live_lag(client: Any, prefix: str) -> dict[str, Any]:
    """The live consumer's lag as recorded batch by batch (``<prefix>:lag``) and each shard's
    event-time high-water mark (``<prefix>:progress``); see ``nexus.cli_surveillance.read_live_lag``."""
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(f"{prefix}:lag")
    pipe.hgetall(f"{prefix}:progress")
    lag_raw, marks_raw = pipe.execute()
    lag = {_text(k): _text(v) for k, v in (lag_raw or {}).items()}
    batches = int(lag.get("batches", 0))
    return {
        "batches": batches,
        "records": int(lag.get("records", 0)),
        "last_lag_ms": int(lag["last_lag_ms"]) if "last_lag_ms" in lag else None,
        "max_lag_ms": int(lag["max_lag_ms"]) if "max_lag_ms" in lag else None,
        "mean_lag_ms": round(int(lag.get("lag_sum_ms", 0)) / batches, 1) if batches else None,
        "last_records": int(lag.get("last_records", 0)),
        "last_at": lag.get("last_at"),
        "last_shard": lag.get("last_shard"),
        "high_water_marks": {
            _text(k): iso(datetime.fromtimestamp(int(v) / 1_000_000, UTC)) for k, v in (marks_raw or {}).items()
        },
    }


class RedisSymbolState:
    """Per symbol: ``<prefix>:gen:<symbol>`` (a counter, +1 per batch applied),
    ``<prefix>:state:<symbol>`` (JSON snapshot of the detectors), ``<prefix>:journal:<symbol>``
    (the batches applied since that snapshot, one JSON list item each) and
    ``<prefix>:lock:<symbol>``.

    ``locked(symbols)`` takes every lock with ``SET NX PX`` and reads every generation in one
    round trip; a lock held by another invocation (the other stream's mapping, or a retry
    overlapping a timed-out run) is waited for, then the batch fails and is retried. A lock
    expires by itself (``lock_ms``) if its holder dies. ``load`` (only for a symbol whose copy in
    memory is not the latest generation) reads snapshots and journals in one round trip;
    ``commit`` appends each symbol's batch (or replaces its snapshot and journal) and moves its
    generation, for all symbols in one ``MULTI``."""

    def __init__(
        self, client: Any, prefix: str, lock_ms: int = 60_000, wait_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:  # fmt: skip
        self.client = client
        self.prefix = prefix
        self.lock_ms = lock_ms
        self.wait_s = wait_s
        self._sleep = sleep

    def _key(self, kind: str, symbol: str) -> str:
        return f"{self.prefix}:{kind}:{symbol}"

    @contextmanager
    def locked(self, symbols: Iterable[str]) -> Iterator[dict[str, int]]:
        wanted = sorted(set(symbols))
        if not wanted:
            yield {}
            return
        token = uuid.uuid4().hex
        locks = [self._key("lock", s) for s in wanted]
        waited = 0.0
        while True:
            pipe = self.client.pipeline(transaction=False)
            for key in locks:
                pipe.set(key, token, nx=True, px=self.lock_ms)
            pipe.mget([self._key("gen", s) for s in wanted])
            *taken, gens = pipe.execute()
            if all(taken):
                break
            self.client.eval(_UNLOCK, len(locks), *locks, token)
            if waited >= self.wait_s:
                raise Unavailable("symbol_locked", "another invocation holds a symbol's surveillance state")
            self._sleep(0.05)
            waited += 0.05
        try:
            yield {s: int(g) if g else 0 for s, g in zip(wanted, gens, strict=True)}
        finally:
            self.client.eval(_UNLOCK, len(locks), *locks, token)

    def symbols(self) -> list[str]:
        """Every symbol with detector state (``SCAN`` of the generation keys)."""
        prefix = f"{self.prefix}:gen:"
        found = {
            (k.decode() if isinstance(k, bytes) else str(k))[len(prefix):]
            for k in self.client.scan_iter(match=prefix + "*", count=1000)
        }
        return sorted(found)

    def progress(self) -> tuple[dict[str, int], dict[str, str]]:
        """(shard -> its event-time high-water mark in epoch ns, symbol -> its shard)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hgetall(f"{self.prefix}:progress")
        pipe.hgetall(f"{self.prefix}:shards")
        marks, shards = pipe.execute()
        return (
            {_text(k): int(v) * 1000 for k, v in (marks or {}).items()},
            {_text(k): _text(v) for k, v in (shards or {}).items()},
        )

    def load(self, symbols: Iterable[str]) -> dict[str, tuple[dict[str, Any] | None, list[dict[str, Any]]]]:
        wanted = sorted(set(symbols))
        pipe = self.client.pipeline(transaction=False)
        for symbol in wanted:
            pipe.get(self._key("state", symbol))
            pipe.lrange(self._key("journal", symbol), 0, -1)
        answers = pipe.execute()
        out: dict[str, tuple[dict[str, Any] | None, list[dict[str, Any]]]] = {}
        for index, symbol in enumerate(wanted):
            state, journal = answers[2 * index], answers[2 * index + 1]
            out[symbol] = (loads(state) if state else None, [loads(entry) for entry in journal])
        return out

    def commit(self, commits: Mapping[str, tuple[int, dict[str, Any], dict[str, Any] | None]],
               progress: BatchProgress | None = None) -> None:  # fmt: skip
        """``symbol -> (new generation, journal entry, snapshot or None)``: with a snapshot, it
        replaces the state and empties the journal (the entry is in it); else the entry is
        appended. ``progress`` (an ``execution-events`` batch) rides in the same transaction:
        the shard's high-water mark (``<prefix>:progress``, raised only), the shard of each of the
        batch's symbols (``<prefix>:shards``) and the lag figures (``<prefix>:lag``)."""
        if not commits:
            return
        pipe = self.client.pipeline(transaction=True)
        if progress is not None:
            pipe.eval(
                _PROGRESS, 3, f"{self.prefix}:progress", f"{self.prefix}:shards", f"{self.prefix}:lag",
                progress.shard, progress.newest_ns // 1000, progress.lag_ms, progress.records, iso(progress.at),
                *progress.symbols,
            )  # fmt: skip
        for symbol, (gen, entry, snapshot) in commits.items():
            if snapshot is not None:
                pipe.set(self._key("state", symbol), dumps(snapshot))
                pipe.delete(self._key("journal", symbol))
            else:
                pipe.rpush(self._key("journal", symbol), dumps(entry))
            pipe.set(self._key("gen", symbol), gen)
        pipe.execute()


# -- DynamoDB ---------------------------------------------------------------------------------


class AccountOwners(LazyTable):
    """Account -> owner user id (``owner_user_id`` on the account item). An account's owner never
    changes, so answers are kept for the life of the process; only accounts not seen before are
    read, with one ``BatchGetItem`` per 100."""

    def __init__(self, table_name: str, table: Any = None) -> None:
        super().__init__(table_name, table)
        self._known: dict[str, str] = {}

    def owners(self, account_ids: Iterable[str]) -> dict[str, str]:
        ids = {a for a in account_ids if a}
        missing = [a for a in ids if a not in self._known]
        if missing:
            found = batch_get(
                self.table, [{"account_id": a} for a in sorted(missing)],
                ProjectionExpression="account_id, owner_user_id",
            )  # fmt: skip
            for item in found:
                self._known[str(item["account_id"])] = str(item.get("owner_user_id") or "")
            for account in missing:
                self._known.setdefault(account, "")
        return {a: self._known[a] for a in ids if self._known.get(a)}


class ThresholdsRepo(LazyTable):
    """Versioned thresholds: ``(detector, version)`` for each change, and ``("current", 0)``
    with ``detectors``: ``{name: {"version": n, "thresholds": {...}}}``."""

    def current(self) -> dict[str, dict[str, Any]]:
        """detector -> {"version", "thresholds", ...} of the versions in force."""
        item = self.table.get_item(Key={"detector": CURRENT, "version": 0}, ConsistentRead=True).get("Item")
        return {k[2:]: dict(v) for k, v in (item or {}).items() if k.startswith("d_") and isinstance(v, dict)}

    def history(self, detector: str, limit: int = 20) -> list[dict[str, Any]]:
        answer = self.table.query(
            KeyConditionExpression=Key("detector").eq(detector), ScanIndexForward=False, Limit=limit
        )
        return [dict(i) for i in answer.get("Items") or []]

    def put_version(self, detector: str, version: int, thresholds: dict[str, Any], actor: str, note: str,
                    at: datetime) -> bool:  # fmt: skip
        """Store ``version`` (False when it exists: another change came first), then make it the
        one in force (``d_<detector>`` on the current item, never moved back to an older
        version). A crash between the two is healed by the next change; the version item is
        the record either way."""
        entry = {"version": version, "thresholds": thresholds, "updated_by": actor, "updated_at": iso(at)}
        if not conditional_write(
            self.table.put_item, Item={"detector": detector, **entry, "note": note},
            ConditionExpression="attribute_not_exists(detector)",
        ):  # fmt: skip
            return False
        conditional_write(
            self.table.update_item,
            Key={"detector": CURRENT, "version": 0},
            UpdateExpression="SET #d = :entry",
            ConditionExpression="attribute_not_exists(#d) OR #d.version < :v",
            ExpressionAttributeNames={"#d": f"d_{detector}"},
            ExpressionAttributeValues={":entry": entry, ":v": version},
        )
        return True


class CachedThresholds:
    """The thresholds in force, re-read at most every ``ttl_s`` seconds (one ``GetItem``): a PUT
    reaches the live detectors within that bound, with no redeploy."""

    def __init__(self, repo: ThresholdsRepo, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self.repo = repo
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._value: dict[str, dict[str, Any]] = {}
        self._read_at: float | None = None

    def current(self) -> dict[str, dict[str, Any]]:
        now = self._monotonic()
        if self._read_at is None or now - self._read_at >= self.ttl_s:
            entries = self.repo.current()
            self._value = {name: dict(e.get("thresholds") or {}) for name, e in entries.items()}
            self._read_at = now
        return self._value


class DynamoAlertStore(LazyTable):
    def put_new(self, item: dict[str, Any]) -> dict[str, Any] | None:
        outcome = conditional(
            self.table.put_item, Item=item, ConditionExpression="attribute_not_exists(alert_id)",
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )  # fmt: skip
        return None if outcome.written else (outcome.old or {})

    def mark_dispatched(self, alert_id: str, at: datetime, halted: list[str]) -> None:
        self.table.update_item(
            Key={"alert_id": alert_id},
            UpdateExpression="SET dispatched_at = :at, halted_accounts = :halted",
            ExpressionAttributeValues={":at": iso(at), ":halted": halted},
        )

    def mark_halted(self, alert_id: str, halted: list[str]) -> None:
        """The accounts this alert halted, recorded as soon as they are (what close resumes)."""
        self.table.update_item(
            Key={"alert_id": alert_id},
            UpdateExpression="SET halted_accounts = :halted",
            ExpressionAttributeValues={":halted": halted},
        )

    def undispatched(self, since: datetime, until: datetime, limit: int = 100) -> list[dict[str, Any]]:
        """Alerts with a window ending in [since, until], detected by ``until``, never dispatched
        (at most ``limit``: the next flush takes the rest)."""
        items: list[dict[str, Any]] = []
        for page in pages(
            self.table.query,
            IndexName="by-time",
            KeyConditionExpression=Key("feed").eq(FEED) & Key("sort").between(iso(since), iso(until) + "\uffff"),
            FilterExpression=Attr("dispatched_at").not_exists() & Attr("detected_at").lte(iso(until)),
        ):
            for item in page.get("Items") or []:  # the index projects the whole item
                items.append(dict(item))
                if len(items) >= limit:
                    return items
        return items

    def get(self, alert_id: str) -> dict[str, Any] | None:
        item = self.table.get_item(Key={"alert_id": alert_id}, ConsistentRead=True).get("Item")
        return dict(item) if item else None

    def transition(self, alert_id: str, allowed_from: tuple[str, ...], to: str, version: int,
                   entry: dict[str, Any]) -> bool:  # fmt: skip
        """Move the alert to ``to`` if it is still at ``version`` (and so in a status it may leave)."""
        names = {"#s": "status"}
        values: dict[str, Any] = {":to": to, ":v": version, ":one": 1, ":entry": [entry]}
        allowed = []
        for i, status in enumerate(allowed_from):
            values[f":f{i}"] = status
            allowed.append(f":f{i}")
        return conditional_write(
            self.table.update_item,
            Key={"alert_id": alert_id},
            UpdateExpression="SET #s = :to, version = version + :one, history = list_append(history, :entry)",
            ConditionExpression=f"version = :v AND #s IN ({', '.join(allowed)})",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def list_page(self, *, start: str, end: str, filters: Mapping[str, str], limit: int,
                  after: dict[str, Any] | None, max_pages: int = 20,
                  ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:  # fmt: skip
        """Alerts newest first with ``window_end`` in [start, end], matching ``filters``
        (status, detector, severity, symbol, account, user), at most ``limit``; and the key to
        go on from (None: no more). Reads at most ``max_pages`` index pages per call."""
        condition = Key("feed").eq(FEED) & Key("sort").between(start, end + "\uffff")
        flt = None
        for name, value in filters.items():
            clause = Attr("accounts").contains(value) if name == "account" else (
                Attr("users").contains(value) if name == "user" else Attr(name).eq(value))  # fmt: skip
            flt = clause if flt is None else flt & clause
        kwargs: dict[str, Any] = {"IndexName": "by-time", "KeyConditionExpression": condition,
                                  "ScanIndexForward": False, "Limit": max(limit, 25)}  # fmt: skip
        if flt is not None:
            kwargs["FilterExpression"] = flt
        if after:
            kwargs["ExclusiveStartKey"] = after
        items: list[dict[str, Any]] = []
        for number, page in enumerate(pages(self.table.query, **kwargs)):
            for item in page.get("Items") or []:
                items.append(dict(item))
                if len(items) == limit:
                    last = items[-1]
                    return items, {"alert_id": last["alert_id"], "feed": last["feed"], "sort": last["sort"]}
            if "LastEvaluatedKey" not in page:
                return items, None
            if number + 1 >= max_pages:
                return items, dict(page["LastEvaluatedKey"])
        return items, None


class KillSwitch(LazyTable):
    """``trading_enabled`` on the account item: what the orders API's pre-trade check reads.

    A surveillance halt is marked by ``trading_halted_by`` (the alert that took it) and holds the
    set ``trading_halted_alerts`` of every open alert that halted the account. An admin's switch
    removes ``trading_halted_by``: from then on the state is the admin's, and no alert lifts it."""

    def halt(self, account_id: str, alert_id: str, at: datetime) -> bool:
        """Switch the account off for this alert: take the halt when trading is on, or join a halt
        surveillance already holds. False (nothing written) when trading is off by an admin."""
        taken = conditional_write(
            self.table.update_item,
            Key={"account_id": account_id},
            # the set is replaced: ids left from a halt an admin overrode are not this halt's
            UpdateExpression="SET trading_enabled = :off, trading_halted_by = :alert, trading_halted_at = :at, "
            "trading_halted_alerts = :alerts",
            ConditionExpression="attribute_exists(account_id) AND "
            "(attribute_not_exists(trading_enabled) OR trading_enabled <> :off)",
            ExpressionAttributeValues={":off": False, ":alert": alert_id, ":at": iso(at), ":alerts": {alert_id}},
        )
        if taken:
            return True
        return conditional_write(
            self.table.update_item,
            Key={"account_id": account_id},
            UpdateExpression="ADD trading_halted_alerts :alerts",
            ConditionExpression="trading_enabled = :off AND attribute_exists(trading_halted_by)",
            ExpressionAttributeValues={":off": False, ":alerts": {alert_id}},
        )

    def resume(self, account_id: str, alert_id: str) -> bool:
        """Release this alert's hold; switch the account back on (True) only when no other alert
        still holds it and the halt is still surveillance's (an admin's switch is never undone)."""
        released = conditional_write(
            self.table.update_item,
            Key={"account_id": account_id},
            UpdateExpression="DELETE trading_halted_alerts :alerts",
            ConditionExpression="trading_enabled = :off AND attribute_exists(trading_halted_by) AND "
            "contains(trading_halted_alerts, :alert)",
            ExpressionAttributeValues={":off": False, ":alerts": {alert_id}, ":alert": alert_id},
        )
        # a halt from before the set existed is released by the alert that took it
        owner = "attribute_exists(trading_halted_by)" if released else "trading_halted_by = :alert"
        values: dict[str, Any] = {":on": True, ":off": False}
        if not released:
            values[":alert"] = alert_id
        return conditional_write(
            self.table.update_item,
            Key={"account_id": account_id},
            UpdateExpression="SET trading_enabled = :on REMOVE trading_halted_by, trading_halted_at",
            # an emptied set is removed by DynamoDB: no alert holds the account any more
            ConditionExpression=f"trading_enabled = :off AND {owner} AND attribute_not_exists(trading_halted_alerts)",
            ExpressionAttributeValues=values,
        )


class ComplianceRecipients(LazyTable):
    """The default account of every active compliance user (their notifications inbox). A Scan
    of the users table, made only when an alert is dispatched and kept ``ttl_s`` seconds (a new
    compliance user is notified from then on)."""

    def __init__(self, table_name: str, ttl_s: float = 300.0, monotonic: Callable[[], float] = time.monotonic) -> None:
        super().__init__(table_name)
        self.ttl_s = ttl_s
        self._monotonic = monotonic
        self._value: list[tuple[str, str]] = []
        self._read_at: float | None = None

    def accounts(self) -> list[tuple[str, str]]:
        """(user id, default account id) of each compliance user."""
        now = self._monotonic()
        if self._read_at is None or now - self._read_at >= self.ttl_s:
            found: list[tuple[str, str]] = []
            for page in pages(
                self.table.scan,
                FilterExpression=Attr("pk").begins_with("user#") & Attr("roles").contains("compliance"),
                ProjectionExpression="user_id, default_account_id, #s",
                ExpressionAttributeNames={"#s": "status"},
            ):
                for item in page.get("Items") or []:
                    if item.get("default_account_id") and item.get("status", "active") == "active":
                        found.append((str(item["user_id"]), str(item["default_account_id"])))
            self._value = sorted(found)
            self._read_at = now
        return self._value


def put_records(stream: str, records: list[tuple[str, dict[str, Any]]]) -> None:
    """``PutRecords`` of JSON records (``nexus_common.kinesis``); a partly refused call raises
    (the batch is retried, and every reader of these streams drops what it has already)."""
    kinesis.put_records(stream, [(key, dumps(data).encode("utf-8")) for key, data in records], "publish_failed")


class AwsAlertEffects:
    """The live path's effects of a new alert (see ``ports.AlertEffects``)."""

    def __init__(self, alerts_stream: str, audit_stream: str, notifications: SqsBatchSender,
                 recipients: ComplianceRecipients, kill_switch: KillSwitch) -> None:  # fmt: skip
        self.alerts_stream = alerts_stream
        self.audit_stream = audit_stream
        self.notifications = notifications
        self.recipients = recipients
        self.kill_switch = kill_switch

    def publish(self, alerts: list[dict[str, Any]]) -> None:
        put_records(self.alerts_stream, [(str(a["symbol"]), a) for a in alerts])

    def audit(self, events: list[AuditEvent]) -> None:
        put_records(self.audit_stream, [(e.partition_key, e.to_wire()) for e in events])

    def notify_compliance(self, alerts: list[dict[str, Any]], at: datetime) -> None:
        messages = [
            {
                "notification_id": f"surveillance-{a['alert_id']}-{user_id}",
                "account_id": account_id,
                "kind": "surveillance_alert",
                "ts": iso(at),
                "alert_id": a["alert_id"],
                "detector": a["detector"],
                "severity": a["severity"],
                "symbol": a["symbol"],
                "accounts": a["accounts"],
            }
            for a in alerts
            for user_id, account_id in self.recipients.accounts()
        ]
        if messages:
            self.notifications.send(messages)

    def halt(self, account_id: str, alert_id: str, at: datetime) -> bool:
        return self.kill_switch.halt(account_id, alert_id, at)


class ScansRepo(LazyTable):
    """``(scan_id, "meta")``: the request and its status; ``(scan_id, "alert#<id>")``: its alerts."""

    def create(self, item: dict[str, Any]) -> None:
        self.table.put_item(Item={**item, "item": "meta"}, ConditionExpression="attribute_not_exists(scan_id)")

    def meta(self, scan_id: str) -> dict[str, Any] | None:
        got = self.table.get_item(Key={"scan_id": scan_id, "item": "meta"}, ConsistentRead=True).get("Item")
        return dict(got) if got else None

    def set_status(self, scan_id: str, status: str, **values: Any) -> None:
        names = {"#s": "status"}
        expr = ["#s = :s"]
        attrs: dict[str, Any] = {":s": status}
        for i, (k, v) in enumerate(values.items()):
            names[f"#k{i}"] = k
            attrs[f":v{i}"] = v
            expr.append(f"#k{i} = :v{i}")
        self.table.update_item(Key={"scan_id": scan_id, "item": "meta"}, UpdateExpression="SET " + ", ".join(expr),
                               ExpressionAttributeNames=names, ExpressionAttributeValues=attrs)  # fmt: skip

    def put_alerts(self, scan_id: str, items: list[dict[str, Any]], expires_at: int) -> None:
        with self.table.batch_writer(overwrite_by_pkeys=["scan_id", "item"]) as writer:
            for item in items:
                writer.put_item(Item={**item, "scan_id": scan_id, "item": f"alert#{item['alert_id']}",
                                      "expires_at": expires_at})  # fmt: skip

    def alerts(self, scan_id: str, limit: int) -> list[dict[str, Any]]:
        answer = self.table.query(
            KeyConditionExpression=Key("scan_id").eq(scan_id) & Key("item").begins_with("alert#"), Limit=limit
        )
        return [dict(i) for i in answer.get("Items") or []]


class AuditHistory(LazyTable):
    """The audit trail's records by time (``by-day`` index): the platform's stored history."""

    def records(self, start: datetime, end: datetime, max_items: int) -> tuple[list[dict[str, Any]], bool]:
        """Records (one per audit entry, ``nexus_common.audit_items``) with ``start <= ts <= end``,
        oldest first, at most ``max_items`` (and whether there were more)."""

        page = min(max_items + 1, 1000)  # records a request: a shard is read as the merge needs it
        query_partition = functools.partial(audit_items.index_partition, self.table, page=page)
        out = list(islice(audit_items.by_time(query_partition, start, end), max_items + 1))
        return out[:max_items], len(out) > max_items


class Lookups:
    """Batched reads for the API: orders and trades of an alert's evidence, a user's accounts."""

    def __init__(self, orders_table: str, trades_table: str, users_table: str) -> None:
        self.orders = LazyTable(orders_table)
        self.trades = LazyTable(trades_table)
        self.users = LazyTable(users_table)

    def orders_by_id(self, order_ids: list[str]) -> list[dict[str, Any]]:
        return batch_get(self.orders.table, [{"order_id": o} for o in order_ids[:100]]) if order_ids else []

    def trades_by_id(self, trade_ids: list[str]) -> list[dict[str, Any]]:
        keys = []
        for trade_id in trade_ids[:100]:
            symbol, _, seq = trade_id.rpartition("-")
            if symbol and seq.isdigit():
                keys.append({"symbol": symbol, "seq": int(seq)})
        return batch_get(self.trades.table, keys) if keys else []

    def user(self, user_id: str) -> dict[str, Any] | None:
        item = self.users.table.get_item(Key={"pk": f"user#{user_id}"}).get("Item")
        return dict(item) if item else None


def send_scan_request(queue_url: str, scan_id: str) -> None:
    aws.client("sqs").send_message(QueueUrl=queue_url, MessageBody=dumps({"scan_id": scan_id}))
