"""Shared fixtures.

``aws``: moto's ``mock_aws`` with every resource that the template (and its nested stacks)
declares, created by the same code that provisions the local platform, so the schema lives in
one place: the template.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from moto import mock_aws

from nexus.local.model import Platform, build_platform
from nexus.local.provision import AwsClients, Provisioner, load
from nexus.local.template import Stack

TEST_STAGE = "test"


@dataclass
class LocalAws:
    stack: Stack
    provisioner: Provisioner
    platform: Platform
    clients: AwsClients
    monkeypatch: pytest.MonkeyPatch

    def env_for(self, function_id: str) -> dict[str, str]:
        """The environment the template gives that function, resolved to real names."""
        return dict(self.platform.functions[function_id].environment)

    def use_function_env(self, function_id: str) -> dict[str, str]:
        """Set that function's environment in os.environ for the rest of the test."""
        env = self.env_for(function_id)
        for key, value in env.items():
            self.monkeypatch.setenv(key, value)
        return env

    def table_name(self, logical_id: str) -> str:
        return str(self.stack.find(logical_id).stack.ref(logical_id))

    def stream_name(self, logical_id: str) -> str:
        return str(self.stack.find(logical_id).stack.ref(logical_id))

    def queue_url(self, logical_id: str) -> str:
        return str(self.stack.find(logical_id).stack.ref(logical_id))

    def client(self, service: str) -> object:
        return self.clients.client(service)


def _reset_cached_clients() -> None:
    """Clients and settings are cached per process, as in a warm Lambda: drop them between
    tests, because moto only intercepts clients made inside its mock."""
    from nexus_common import aws as common_aws
    from nexus_common import settings as common_settings

    common_aws.clear_clients()
    common_settings.reset_lazy()


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "NexusTrade")


@pytest.fixture
def aws(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAws]:
    _reset_cached_clients()
    with mock_aws():
        clients = AwsClients(endpoint_url=None, region=os.environ["AWS_REGION"])
        stack, provisioner = load(clients, create=True, parameters={"Stage": TEST_STAGE})
        platform = build_platform(stack)
        yield LocalAws(stack, provisioner, platform, clients, monkeypatch)
    _reset_cached_clients()


@pytest.fixture(scope="session")
def local_platform() -> Iterator[object]:
    """The whole platform, started in-process as ``nexus up --demo`` would, on free ports."""
    from nexus.local.runtime import Options, free_port, running

    options = Options(
        api_port=free_port(), aws_port=free_port(), ws_port=free_port(), stage="systest", demo=True, write_state=False
    )
    with running(options) as platform:
        yield platform


@pytest.fixture(scope="module")
def embedded_endpoint() -> Iterator[str]:
    """The embedded AWS (``nexus.local.aws_server``) in a process of its own, for a module's tests:
    its endpoint."""
    from helpers import embedded_aws

    with embedded_aws() as endpoint:
        yield endpoint
