"""``GET /health``: each dependency and the engine's leadership, against a real Redis and the
template's table under moto; the engine's lease and status record written as the engine writes
them (``nexus_matching.runner``)."""

from __future__ import annotations

import json
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from lambda_events import FakeLambdaContext
from marketdata_redis import redis_db, redis_url  # noqa: F401 - fixtures
from nexus_common.events import iso
from nexus_common.redis_store import reset_redis_client
from nexus_health import api as health

NOW = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)


@pytest.fixture
def env(aws: Any, redis_db: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:  # noqa: F811
    variables = aws.use_function_env("HealthFunction")
    monkeypatch.delenv("REDIS_URL_SECRET_ARN", raising=False)  # REDIS_URL (redis_db) instead
    monkeypatch.setattr(health, "clock", lambda: NOW)
    prefix = f"nexus:engine:{variables['ORDER_COMMANDS_STREAM']}"
    return {"redis": redis_db, "prefix": prefix}


def _engine_leads(env: dict[str, Any], *, epoch: int = 5, seen: timedelta = timedelta(seconds=1),
                  behind_ms: int = 20, unpublished: bool = False) -> None:  # fmt: skip
    """As the leader's heartbeat writes them: the lease and the status record beside it."""
    client, prefix = env["redis"], env["prefix"]
    client.set(f"{prefix}:leader", f"{epoch}:4242@ip-10-0-3-7", px=3000)
    status = {"node": "4242@ip-10-0-3-7", "epoch": epoch, "at": iso(NOW - seen), "behind_ms": behind_ms,
              "unpublished": unpublished}  # fmt: skip
    client.set(f"{prefix}:status", json.dumps(status), px=3000)


def _health() -> tuple[int, dict[str, Any]]:
    response = health.handler({}, FakeLambdaContext())
    assert response["headers"]["Cache-Control"] == "no-store"
    return response["statusCode"], json.loads(response["body"])


def test_ok_when_the_tables_and_redis_answer_and_an_engine_leads_and_keeps_up(env: dict[str, Any]) -> None:
    # GIVEN a leader under a live lease that read order-commands 20 ms behind the tip a second ago
    _engine_leads(env)
    # WHEN health is asked
    status, body = _health()
    # THEN 200 ok with each dependency's state, and nothing about hosts
    assert status == 200 and body["status"] == "ok" and body["time"] == "2026-03-02T15:00:00.000000Z"
    checks = body["checks"]
    assert checks["tables"] == {"status": "ok"} and checks["redis"] == {"status": "ok"}
    assert checks["engine"]["status"] == "ok" and checks["engine"]["leader"] is True and checks["engine"]["epoch"] == 5
    assert 0 < checks["engine"]["lease_ms_left"] <= 3000
    assert checks["order_commands"] == {"status": "ok", "lag_ms": 20, "engine_seen_ms_ago": 1000, "publishing": True}
    assert "ip-10" not in json.dumps(body) and "4242" not in json.dumps(body)


def test_degraded_when_no_engine_holds_the_lease(env: dict[str, Any]) -> None:
    # GIVEN Redis and the tables up, but no leader (the engines crash-loop, or none runs)
    # WHEN health is asked, THEN 503 degraded: no leader, the lag unknown
    status, body = _health()
    assert status == 503 and body["status"] == "degraded"
    assert body["checks"]["engine"] == {"status": "down", "leader": False, "epoch": None, "lease_ms_left": 0}
    assert body["checks"]["order_commands"]["status"] == "unknown"
    assert body["checks"]["redis"] == {"status": "ok"}


@pytest.mark.parametrize(
    ("leader", "why"),
    [
        ({"behind_ms": 60_000}, "the engine reads far behind the tip (replaying)"),
        ({"seen": timedelta(seconds=45)}, "the leader's loop has not reported for 45 s"),
        ({"unpublished": True}, "the leader cannot publish its events"),
    ],
)
def test_degraded_when_the_leader_does_not_keep_up(env: dict[str, Any], leader: dict[str, Any], why: str) -> None:
    # GIVEN a leader that does not keep up
    _engine_leads(env, **leader)
    # WHEN health is asked, THEN 503 degraded, the engine leads but order-commands is behind
    status, body = _health()
    assert status == 503 and body["status"] == "degraded", why
    assert body["checks"]["engine"]["status"] == "ok" and body["checks"]["order_commands"]["status"] == "behind"


def test_degraded_when_redis_does_not_answer(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN Redis unreachable (a port nobody listens on)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("REDIS_URL", f"redis://127.0.0.1:{port}/0")
    reset_redis_client()
    # WHEN health is asked, THEN 503 degraded: Redis down, the engine's state unknown, no URL told
    status, body = _health()
    assert status == 503 and body["status"] == "degraded"
    assert body["checks"]["redis"] == {"status": "down"} and body["checks"]["tables"] == {"status": "ok"}
    assert body["checks"]["engine"] == {"status": "unknown", "leader": None}
    assert str(port) not in json.dumps(body)


def test_degraded_when_the_table_does_not_answer(env: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN an engine leading, but the instruments table missing
    _engine_leads(env)
    monkeypatch.setenv("INSTRUMENTS_TABLE", "no-such-table")
    # WHEN health is asked, THEN 503 degraded, the tables down, no AWS error text
    status, body = _health()
    assert status == 503 and body["checks"]["tables"] == {"status": "down"}
    assert "ResourceNotFound" not in json.dumps(body)


def test_a_lease_of_a_newer_epoch_than_the_status_record_is_not_yet_keeping_up(env: dict[str, Any]) -> None:
    # GIVEN a new leader (epoch 6) that has not written its status yet, the old record epoch 5
    _engine_leads(env)
    env["redis"].set(f"{env['prefix']}:leader", "6:77@ip-10-0-3-8", px=3000)
    # WHEN health is asked, THEN the engine leads but its lag is unknown yet: degraded
    status, body = _health()
    assert status == 503 and body["checks"]["engine"]["epoch"] == 6
    assert body["checks"]["order_commands"] == {"status": "unknown", "lag_ms": None, "engine_seen_ms_ago": None,
                                                "publishing": None}  # fmt: skip
