"""``nexus up`` marks the clients a user waits on (``first_functions``, the containers and its own
event source reads) so that the embedded AWS serves their requests ahead of the background
consumers' (``aws_server.FairLock``)."""

from __future__ import annotations

from pathlib import Path

from test_apigw_methods import LocalNames

from nexus.local.lambdas import FIRST_APP_ID, LocalLambda
from nexus.local.model import build_platform
from nexus.local.runtime import first_functions
from nexus.local.template import load_stack

ROOT = Path(__file__).resolve().parents[3]


def test_the_apis_and_the_consumers_without_a_batching_window_go_first_and_batch_gatherers_wait() -> None:
    platform = build_platform(load_stack(ROOT / "template.yaml", LocalNames(), {"Stage": "test"}))
    first = first_functions(platform)
    # the API: the authorizer and the order routes
    assert {"AuthorizerFunction", "OrdersApiFunction"} <= first
    # the consumers on the order's path take records as they come
    assert {"OrdersConsumerFunction", "RiskConsumerFunction", "MarketDataConsumerFunction"} <= first
    # those that gather a batch over a window wait: the audit trail, positions, surveillance
    assert not {"AuditStreamsConsumerFunction", "AuditTablesConsumerFunction", "PortfolioConsumerFunction",
                "SurveillanceConsumerFunction"} & first  # fmt: skip
    for fid in first:
        windows = [float(e.properties.get("MaximumBatchingWindowInSeconds", 0) or 0)
                   for e in platform.functions[fid].events if e.type in ("Kinesis", "DynamoDB")]  # fmt: skip
        assert 0.0 in windows or not windows


def test_a_function_that_goes_first_gets_the_sdk_app_id_in_its_environment() -> None:
    platform = build_platform(load_stack(ROOT / "template.yaml", LocalNames(), {"Stage": "test"}))
    wanted = {fid: platform.functions[fid] for fid in ("OrdersApiFunction", "AuditStreamsConsumerFunction")}
    lambdas = LocalLambda(wanted, {"TZ": "UTC"}, "us-east-1", "123456789012", first={"OrdersApiFunction"})
    assert lambdas.pools["OrdersApiFunction"]._base_env["AWS_SDK_UA_APP_ID"] == FIRST_APP_ID
    assert "AWS_SDK_UA_APP_ID" not in lambdas.pools["AuditStreamsConsumerFunction"]._base_env
