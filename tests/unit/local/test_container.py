"""A container's process on the local platform (``nexus.local.container``): its module runs as
``python -m`` runs it, with its SDK requests to the embedded AWS sent as the workers send them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nexus.local import container, signing

PROBE = """
import http.client, json, sys
from botocore.auth import SigV4Auth
from botocore.httpsession import URLLib3Session
from nexus.local import http_headers, signing, transport
with open(sys.argv[-1], "w") as out:
    json.dump({
        "name": __name__,
        "argv": sys.argv[:-1],
        "path0": sys.path[0],
        "main_is_me": sys.modules["__main__"].__dict__.get("MARK") == 42,
        "transport": URLLib3Session.send is transport._send,
        "signing": SigV4Auth.add_auth is signing._add_auth,
        "headers": http.client.parse_headers is http_headers.parse_headers,
    }, out)
raise SystemExit(int(sys.argv[1]))
"""


def _run(tmp_path: Path, launcher: bool, endpoint: str | None, code: int = 0) -> tuple[int, dict[str, Any]]:
    (tmp_path / "probe_task.py").write_text("MARK = 42\n" + PROBE)
    out = tmp_path / f"seen-{launcher}-{bool(endpoint)}.json"
    module = ["-m", "nexus.local.container", "probe_task"] if launcher else ["-m", "probe_task"]
    env = {k: v for k, v in os.environ.items() if k != signing.ENDPOINT_ENV}
    if endpoint:
        env[signing.ENDPOINT_ENV] = endpoint
    done = subprocess.run([sys.executable, *module, str(code), "--flag", str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert out.exists(), done.stderr
    return done.returncode, json.loads(out.read_text())


def test_the_module_runs_as_python_m_runs_it_with_the_lean_sdk_path_to_the_embedded_aws(tmp_path: Path) -> None:
    code, launched = _run(tmp_path, launcher=True, endpoint="http://127.0.0.1:4566", code=3)
    plain_code, plain = _run(tmp_path, launcher=False, endpoint="http://127.0.0.1:4566", code=3)

    assert code == plain_code == 3  # the module's exit status is the process's
    for key in ("name", "argv", "path0", "main_is_me"):
        assert launched[key] == plain[key], key
    assert launched["name"] == "__main__" and launched["main_is_me"]
    assert launched["argv"][0].endswith("probe_task.py") and launched["argv"][1:] == ["3", "--flag"]
    assert launched["transport"] and launched["signing"] and launched["headers"]
    assert not (plain["transport"] or plain["signing"])  # only the launcher installs them


def test_without_the_embedded_aws_requests_are_sent_and_signed_as_ever(tmp_path: Path) -> None:
    code, launched = _run(tmp_path, launcher=True, endpoint=None)

    assert code == 0
    assert not launched["transport"] and not launched["signing"]


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        (["python", "-m", "nexus_fix"], ["/py", "-m", "nexus.local.container", "nexus_fix"]),
        (["python3", "-m", "nexus_matching", "-v"], ["/py", "-m", "nexus.local.container", "nexus_matching", "-v"]),
        (["python", "serve.py"], ["python", "serve.py"]),  # not a module: as the task gives it
        (["/bin/engine", "-m", "x"], ["/bin/engine", "-m", "x"]),
        (["python", "-m"], ["python", "-m"]),
    ],
)
def test_only_a_python_m_command_goes_through_the_launcher(task: list[str], expected: list[str]) -> None:
    assert container.command(task, "/py") == expected


def test_the_launcher_needs_a_module() -> None:
    done = subprocess.run([sys.executable, "-m", "nexus.local.container"], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip
    assert done.returncode != 0 and "usage" in done.stderr
