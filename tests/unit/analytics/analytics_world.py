"""A moto world built from the template once per test module (the ``aws`` fixture of
tests/conftest.py, module-scoped): the analytics tests read a few hundred sessions of closes,
which are written once rather than before every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from moto import mock_aws

from nexus.local.model import Platform, build_platform
from nexus.local.provision import AwsClients, load

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "NexusTrade",
}


def _reset() -> None:
    from nexus_common import aws as common_aws
    from nexus_common import settings as common_settings

    common_aws.clear_clients()
    common_settings.reset_lazy()


@contextmanager
def moto_platform(monkeypatch: pytest.MonkeyPatch, *functions: str) -> Iterator[Platform]:
    """Every resource of the template under moto, and the environment of ``functions`` set."""
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    for key, value in CREDENTIALS.items():
        monkeypatch.setenv(key, value)
    _reset()
    with mock_aws():
        clients = AwsClients(endpoint_url=None, region=os.environ["AWS_REGION"])
        stack, _ = load(clients, create=True, parameters={"Stage": "test"})
        platform = build_platform(stack)
        for function in functions:
            for key, value in platform.functions[function].environment.items():
                monkeypatch.setenv(key, value)
        yield platform
    _reset()
