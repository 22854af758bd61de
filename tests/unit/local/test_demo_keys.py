"""`nexus up --demo` never shows the demo API keys: they are written to the state folder's
demo-accounts.json only, readable by its owner alone from the first byte, and the banner says where."""

from __future__ import annotations

import stat
from pathlib import Path

from nexus.cli import banner
from nexus.local import runtime
from nexus.local.runtime import LocalPlatform, Options, _write_private

ACCOUNTS = [
    {"name": "alice", "account_id": "acc_alice", "api_key": "nxk_alice-secret-key"},
    {"name": "bob", "account_id": "acc_bob", "api_key": "nxk_bob-secret-key"},
]


def _up(redis_url: str = "redis://127.0.0.1:6379/0") -> LocalPlatform:
    local = LocalPlatform(Options(demo=True, write_state=False))
    local.api_url, local.ws_url, local.aws_endpoint = "http://127.0.0.1:8000", "ws://127.0.0.1:8001/ws", "http://x"
    local.redis_url = redis_url
    local.demo_accounts = [dict(a) for a in ACCOUNTS]
    return local


def test_the_banner_names_the_demo_accounts_and_where_their_keys_are_but_not_the_keys() -> None:
    # GIVEN a platform up with the demo accounts WHEN its banner is printed
    text = "\n".join(banner(_up()))
    # THEN no key is in it; the accounts and the file with their keys are
    assert "nxk_" not in text and "secret" not in text
    assert "acc_alice" in text and "acc_bob" in text
    assert f"API keys in {runtime.DEMO_FILE}" in text


def test_the_banner_hides_a_password_in_the_redis_url() -> None:
    text = "\n".join(banner(_up("redis://user:hunter2@redis.internal:6379/0")))
    assert "hunter2" not in text and "redis.internal:6379" in text


def test_the_keys_file_is_readable_by_its_owner_only_even_when_it_existed(tmp_path: Path) -> None:
    # GIVEN a demo-accounts.json left world-readable by an earlier run
    path = tmp_path / "demo-accounts.json"
    path.write_text("[]")
    path.chmod(0o644)
    # WHEN the keys are written
    _write_private(path, '[{"api_key": "nxk_x"}]')
    # THEN only the owner may read or write it
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text() == '[{"api_key": "nxk_x"}]'
    # AND a new file is created that way
    fresh = tmp_path / "fresh.json"
    _write_private(fresh, "[]")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
