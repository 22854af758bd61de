"""Some of the template's functions as the local runtime runs them (importable as
``template_functions``): the template's resources provisioned on a real moto server, each
function in its own worker process with the ``Handler`` and environment the template gives it,
and, on ``start_streams``, the template's own Kinesis event source mappings of those functions."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

import boto3

from nexus.local.lambdas import LocalLambda, worker_base_env
from nexus.local.model import build_platform
from nexus.local.pollers import MemoryCheckpoints, StreamMapping
from nexus.local.provision import AwsClients, load

REGION = "us-east-1"
TS = "2026-03-05T15:00:00.000000Z"  # a Thursday: its fills settle Monday 2026-03-09


def engine_event(seq: int, kind: str, symbol: str = "AAPL", ts: str = TS, **fields: Any) -> dict[str, Any]:
    """One engine event as it stands in an execution-events record: the envelope, then ``fields``."""
    return {"event_id": f"{symbol}-{seq}", "type": kind, "version": 1, "ts": ts, "correlation_id": "c",
            "symbol": symbol, "seq": seq, "epoch": 0, **fields}


class TemplateFunctions:
    def __init__(self, endpoint: str, stage: str, functions: Iterable[str]) -> None:
        wanted = frozenset(functions)
        self.clients = AwsClients(endpoint_url=endpoint)
        parameters = {
            "Stage": stage,
            "RedisUrlSecretArn": "arn:aws:secretsmanager:us-east-1:123456789012:secret:unused",
            "WebSocketManagementEndpoint": "http://127.0.0.1:9",
        }
        stack, provisioner = load(self.clients, create=True, parameters=parameters)
        self.platform = build_platform(stack)
        self.account = provisioner.account_id
        self.lambdas = LocalLambda(
            {fid: fn for fid, fn in self.platform.functions.items() if fid in wanted},
            worker_base_env(endpoint, REGION),
            REGION,
            self.account,
        )
        self.sources = [s for s in self.platform.event_sources("Kinesis") if s.function in wanted]
        self.dynamodb = boto3.resource("dynamodb", endpoint_url=endpoint, region_name=REGION)
        self.stop = threading.Event()

    def ref(self, logical_id: str) -> str:
        return str(self.platform.stack.find(logical_id).stack.ref(logical_id))

    def table(self, logical_id: str) -> Any:
        return self.dynamodb.Table(self.ref(logical_id))

    def start_streams(self) -> None:
        """The functions' Kinesis mappings, polling as ``nexus up`` polls them."""
        for source in self.sources:
            StreamMapping(
                self.lambdas, source, self.clients, REGION, self.account, MemoryCheckpoints(), self.stop
            ).start()

    def close(self) -> None:
        self.stop.set()
        self.lambdas.close()
