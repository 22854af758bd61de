"""Operator commands run with no platform to talk to say so, instead of a traceback, and never
fall back to the default AWS endpoint and credentials (nexus/platform.py)."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nexus import platform
from nexus.local.runtime import LOCAL_CREDENTIALS

NEXUS = Path(platform.__file__).parent


def test_reconcile_without_a_platform_or_credentials_says_so(tmp_path: Path) -> None:
    # GIVEN no running platform (an empty state folder) and no AWS endpoint or credentials
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= {"NEXUS_STATE_DIR": str(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
            "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true"}  # fmt: skip
    # WHEN an operator reconciles
    done = subprocess.run([sys.executable, "-m", "nexus.cli", "reconcile"], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    # THEN it exits 2 with one line saying what to do, and no traceback
    assert done.returncode == 2
    assert "start `nexus up`" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def _no_platform_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k.lower() not in ("no_proxy",)}
    return env | {"NEXUS_STATE_DIR": str(tmp_path), "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                  "AWS_CONFIG_FILE": str(tmp_path / "none"), "AWS_EC2_METADATA_DISABLED": "true",
                  "NEXUS_STAGE": ""}  # fmt: skip


@pytest.fixture
def aws_trap() -> Iterator[socket.socket]:
    """A proxy that nobody should reach: every AWS request of the CLI would connect to it first."""
    with socket.socket() as trap:
        trap.bind(("127.0.0.1", 0))
        trap.listen()
        trap.setblocking(False)
        yield trap


def _reached(trap: socket.socket) -> bool:
    try:
        connection, _ = trap.accept()
    except BlockingIOError:
        return False
    connection.close()
    return True


def _nexus(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "nexus.cli", *args], env=env, capture_output=True, text=True,
                          timeout=120)  # fmt: skip


PLATFORM_COMMANDS = [
    ["accounts", "create", "--name", "Carol", "--cash", "100.00"],
    ["accounts", "deposit", "--account", "acc_1", "--amount", "10.00"],
    ["accounts", "approve", "--request", "fnd_1"],
    ["users", "grant", "--user", "ada@example.com", "--role", "admin"],
    ["users", "revoke", "--user", "ada@example.com", "--role", "admin"],
    ["users", "disable", "--user", "ada@example.com"],
    ["auth", "rotate-signing-key"],
    ["reconcile"],
    ["simulate", "--accounts", "2", "--trades", "1"],
    ["prices", "import", "closes.csv"],
]


@pytest.mark.parametrize("command", PLATFORM_COMMANDS, ids=[" ".join(c[:2]) for c in PLATFORM_COMMANDS])
def test_no_platform_command_falls_back_to_the_default_aws(
    tmp_path: Path, aws_trap: socket.socket, command: list[str]
) -> None:
    # GIVEN no running platform, but AWS credentials configured (as on an operator's laptop), and
    # every request to AWS routed through a proxy that records being reached
    env = _no_platform_env(tmp_path) | {
        "AWS_ACCESS_KEY_ID": "AKIAREALLOOKINGKEY00", "AWS_SECRET_ACCESS_KEY": "real-looking-secret",
        "AWS_REGION": "us-east-1", "HTTPS_PROXY": f"http://127.0.0.1:{aws_trap.getsockname()[1]}",
        "HTTP_PROXY": f"http://127.0.0.1:{aws_trap.getsockname()[1]}",
    }  # fmt: skip
    # WHEN an operator runs a command that needs the platform
    done = _nexus(env, *command)
    # THEN it exits 2 with one line naming what to do, no traceback, and nothing sent to AWS
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()]
    assert "no running platform" in done.stderr and "start `nexus up`" in done.stderr
    assert "--endpoint-url" in done.stderr and "--stage" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not _reached(aws_trap)


def test_a_state_file_left_by_a_dead_platform_is_no_platform(tmp_path: Path, aws_trap: socket.socket) -> None:
    # GIVEN the state file of a nexus up that was killed (its process is gone)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    state = {"aws_endpoint": "http://127.0.0.1:9", "api_url": "http://127.0.0.1:8", "stage": "local",
             "region": "us-east-1", "pid": int(gone.stdout)}  # fmt: skip
    (tmp_path / "runtime.json").write_text(json.dumps(state))
    # WHEN an operator creates an account
    done = _nexus(_no_platform_env(tmp_path), "accounts", "create", "--name", "Carol", "--cash", "1.00")
    # THEN one line says the platform is gone
    assert done.returncode == 2
    assert "which is gone" in done.stderr and "start `nexus up`" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_running_platform_whose_aws_does_not_answer_says_so_in_one_line(tmp_path: Path) -> None:
    # GIVEN the state file of a live nexus up (this test's process) whose AWS endpoint is gone
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        endpoint = f"http://127.0.0.1:{closed.getsockname()[1]}"
    state = {"aws_endpoint": endpoint, "api_url": "http://127.0.0.1:8", "stage": "local", "region": "us-east-1",
             "pid": os.getpid()}  # fmt: skip
    (tmp_path / "runtime.json").write_text(json.dumps(state))
    # WHEN an operator rotates the signing key
    done = _nexus(_no_platform_env(tmp_path), "auth", "rotate-signing-key")
    # THEN one line says the platform's AWS cannot be reached
    assert done.returncode == 2
    assert done.stderr.strip() == f"nexus: cannot reach the running nexus up ({endpoint}, pid {os.getpid()}): " \
        "is `nexus up` running?"


def test_a_named_stage_without_credentials_says_so_in_one_line(tmp_path: Path) -> None:
    # GIVEN no credentials WHEN an operator names a deployed stage
    done = _nexus(_no_platform_env(tmp_path), "users", "grant", "--user", "a@example.com", "--role", "admin",
                  "--stage", "prod")  # fmt: skip
    # THEN one line says what is missing, instead of botocore's NoCredentialsError traceback
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "nexus: no AWS credentials to reach AWS, stage prod: configure them, or pass --profile"
    )


def test_a_stage_the_template_refuses_says_so_in_one_line(tmp_path: Path) -> None:
    done = _nexus(_no_platform_env(tmp_path), "reconcile", "--stage", "Prod!")
    assert done.returncode == 2
    assert done.stderr.startswith("nexus: --stage: parameter Stage value 'Prod!' does not match")
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_unknown_profile_says_so_in_one_line(tmp_path: Path) -> None:
    done = _nexus(_no_platform_env(tmp_path), "auth", "rotate-signing-key", "--profile", "nosuch")
    assert done.returncode == 2
    assert done.stderr.strip() == "nexus: the AWS profile 'nosuch' is not configured"


# -- which platform a command acts on (no I/O) -----------------------------------------------

RUNNING = {"aws_endpoint": "http://127.0.0.1:4566", "api_url": "http://127.0.0.1:8000", "stage": "local",
           "region": "eu-west-1", "pid": 1}  # fmt: skip


def test_the_running_platform_is_used_with_the_emulations_credentials_only() -> None:
    # GIVEN a running nexus up, and real credentials and a profile in the shell
    environ = {"AWS_ACCESS_KEY_ID": "AKIAREAL", "AWS_SECRET_ACCESS_KEY": "real", "AWS_SESSION_TOKEN": "tok",
               "AWS_PROFILE": "prod"}  # fmt: skip
    # WHEN a command connects
    target = platform.resolve(None, None, None, environ, RUNNING)
    platform.apply(target, environ)
    # THEN it talks to the running platform's endpoint with the emulation's dummy credentials
    assert target.local and target.stage == "local" and target.api_url == "http://127.0.0.1:8000"
    assert environ == {**LOCAL_CREDENTIALS, "AWS_ENDPOINT_URL": "http://127.0.0.1:4566", "AWS_REGION": "eu-west-1",
                       "AWS_DEFAULT_REGION": "eu-west-1"}  # fmt: skip


def test_aws_endpoint_url_names_an_endpoint_without_a_running_platform() -> None:
    environ = {"AWS_ENDPOINT_URL": "http://localhost:4566", "NEXUS_STAGE": "qa"}
    target = platform.resolve(None, None, None, environ, None)
    assert (target.endpoint_url, target.stage, target.local) == ("http://localhost:4566", "qa", False)


@pytest.mark.parametrize(
    ("flags", "endpoint", "profile", "stage", "local"),
    [
        ({"stage": "prod"}, None, None, "prod", False),
        ({"stage": "local"}, "http://127.0.0.1:4566", None, "local", True),  # the running one has that stage
        ({"profile": "ops", "stage": "prod"}, None, "ops", "prod", False),
        ({"endpoint_url": "http://localhost:4566"}, "http://localhost:4566", None, "local", False),
    ],
    ids=["stage", "stage-of-the-running-one", "profile", "endpoint-url"],
)
def test_flags_name_the_platform(
    flags: dict[str, str], endpoint: str | None, profile: str | None, stage: str, local: bool
) -> None:
    # GIVEN a running nexus up WHEN a command names a platform with a flag THEN that one is used
    target = platform.resolve(flags.get("stage"), flags.get("endpoint_url"), flags.get("profile"), {}, RUNNING)
    assert (target.endpoint_url, target.profile, target.stage, target.local) == (endpoint, profile, stage, local)


def test_a_profile_replaces_the_environments_credentials() -> None:
    environ = {"AWS_ACCESS_KEY_ID": "AKIAENV", "AWS_SECRET_ACCESS_KEY": "env", "AWS_ENDPOINT_URL": "http://x",
               "AWS_REGION": "eu-west-1"}  # fmt: skip
    platform.apply(platform.resolve("prod", None, "ops", environ, None), environ)
    assert environ == {"AWS_PROFILE": "ops", "AWS_REGION": "eu-west-1", "AWS_DEFAULT_REGION": "eu-west-1"}


def test_nothing_named_and_nothing_running_is_unreachable() -> None:
    with pytest.raises(platform.Unreachable, match="no running platform"):
        platform.resolve(None, None, None, {"AWS_ACCESS_KEY_ID": "AKIAREAL", "AWS_SECRET_ACCESS_KEY": "x"}, None)


def test_no_module_imports_the_cli_entry_point() -> None:
    # GIVEN the CLI's modules WHEN their imports are read THEN none imports nexus.cli (one helper
    # module, nexus.platform, connects every command; no import circle)
    importers = []
    for path in NEXUS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "nexus.cli":
                importers.append(path.name)
            if isinstance(node, ast.Import) and any(alias.name == "nexus.cli" for alias in node.names):
                importers.append(path.name)
    assert importers == []


def test_a_nexus_up_started_by_this_process_is_reached_as_the_running_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nexus.local.runtime import read_state

    # GIVEN a child nexus up's state folder (its own NEXUS_STATE_DIR), and real keys in the shell
    (tmp_path / "runtime.json").write_text(json.dumps(RUNNING))
    for key in ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                "AWS_DEFAULT_PROFILE"):  # fmt: skip
        monkeypatch.setenv(key, "unset")  # recorded, so each is given back as it was after the test ...
        monkeypatch.delenv(key)  # ... even one that did not exist (use() sets them)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREAL")
    monkeypatch.setenv("AWS_PROFILE", "prod")
    monkeypatch.setattr(platform, "_current", None)
    # WHEN a command of this process uses it (bench day, bench fix)
    target = platform.use(platform.local_target(read_state(tmp_path)))
    # THEN it is the same platform `nexus reconcile` resolves for a running nexus up, now current,
    # reached with the emulation's credentials only
    assert target == platform.resolve(None, None, None, {}, RUNNING)
    assert platform.current() is target
    assert os.environ["AWS_ENDPOINT_URL"] == "http://127.0.0.1:4566"
    assert os.environ["AWS_ACCESS_KEY_ID"] == LOCAL_CREDENTIALS["AWS_ACCESS_KEY_ID"]
    assert "AWS_PROFILE" not in os.environ


def test_an_empty_state_folder_has_no_state(tmp_path: Path) -> None:
    from nexus.local.runtime import read_state

    assert read_state(tmp_path) == {}
