"""Operator commands run with no platform to talk to say so, instead of a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


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
