"""The template loader resolves what CloudFormation would: parameters, conditions, Globals,
intrinsic functions and nested stacks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from nexus.local.model import _image_python_path
from nexus.local.template import Stack, TemplateError, load_stack


class Names:
    """A materializer that names every resource after its logical id."""

    def ref(self, stack: Stack, logical_id: str) -> Any:
        return f"phys-{logical_id}"

    def get_att(self, stack: Stack, logical_id: str, attribute: str) -> Any:
        return f"{logical_id}.{attribute}"


ROOT = """
AWSTemplateFormatVersion: "2010-09-09"
Transform: AWS::Serverless-2016-10-31
Parameters:
  Stage: {Type: String, Default: dev}
  Shards: {Type: Number, Default: 2}
  Subnets: {Type: CommaDelimitedList, Default: "a,b"}
Conditions:
  IsProd: !Equals [!Ref Stage, prod]
  NotProd: !Not [!Condition IsProd]
Globals:
  Function:
    Timeout: 7
    Environment: {Variables: {SHARED: "yes"}}
Resources:
  Table:
    Type: AWS::DynamoDB::Table
    Properties:
      TableName: !Sub "nexus-${Stage}-t"
  ProdOnly:
    Type: AWS::SQS::Queue
    Condition: IsProd
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      Handler: x.handler
      Environment:
        Variables:
          TABLE: !Ref Table
          ARN: !GetAtt Table.Arn
          JOINED: !Join ["-", [!Ref Stage, !Select [1, !Ref Subnets]]]
          SPLIT: !Select [0, !Split [",", "p,q"]]
          CHOSEN: !If [NotProd, small, big]
          REGION: !Sub "${AWS::Region}/${Table.Arn}/${!Literal}"
  Child:
    Type: AWS::Serverless::Application
    Properties:
      Location: child.yaml
      Parameters:
        TableName: !Ref Table
        Shards: !Ref Shards
"""

CHILD = """
Parameters:
  TableName: {Type: String}
  Shards: {Type: Number}
Resources:
  Stream:
    Type: AWS::Kinesis::Stream
    Properties:
      Name: !Sub "${TableName}-stream"
      ShardCount: !Ref Shards
Outputs:
  StreamName:
    Value: !Ref Stream
"""


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    (tmp_path / "template.yaml").write_text(ROOT)
    (tmp_path / "child.yaml").write_text(CHILD)
    return load_stack(tmp_path / "template.yaml", Names(), {"Stage": "qa"})


def test_parameters_intrinsics_globals_and_conditions(stack: Stack) -> None:
    fn = stack.resources["Fn"]
    env = fn.resolved("Environment")["Variables"]
    assert env == {
        "SHARED": "yes",
        "TABLE": "phys-Table",
        "ARN": "Table.Arn",
        "JOINED": "qa-b",
        "SPLIT": "p",
        "CHOSEN": "small",
        "REGION": "us-east-1/Table.Arn/${Literal}",
    }
    assert fn.resolved("Timeout") == 7
    assert stack.resources["Table"].resolved("TableName") == "nexus-qa-t"
    assert "ProdOnly" not in stack.resources  # its condition is false


def test_nested_stack_parameters_and_outputs(stack: Stack) -> None:
    child = stack.children["Child"]
    assert child.resources["Stream"].resolved("Name") == "phys-Table-stream"
    assert child.resources["Stream"].resolved("ShardCount") == "2"
    assert stack.get_att("Child", "Outputs.StreamName") == "phys-Stream"
    assert stack.find("Stream").stack is child


def test_unknown_reference_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(
        "Resources:\n  Q:\n    Type: AWS::SQS::Queue\n    Properties:\n      QueueName: !Ref Nope\n"
    )
    stack = load_stack(tmp_path / "t.yaml", Names())
    with pytest.raises(TemplateError):
        stack.resources["Q"].resolved("QueueName")


def test_missing_parameter_value_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text("Parameters:\n  P: {Type: String}\nResources: {}\n")
    with pytest.raises(TemplateError):
        load_stack(tmp_path / "t.yaml", Names())


def test_project_template_declares_what_the_runtime_runs(aws: Any) -> None:
    # GIVEN the project's own template, provisioned under moto
    platform = aws.platform
    # THEN every function, route and event source is read from it
    assert {"OrdersApiFunction", "OrdersConsumerFunction", "AuthorizerFunction"} <= set(platform.functions)
    assert {(r.method, r.path) for r in platform.routes} >= {
        ("POST", "/v1/orders"),
        ("GET", "/v1/orders/{order_id}"),
        ("DELETE", "/v1/orders/{order_id}"),
        ("GET", "/v1/markets/{symbol}/book"),
        ("GET", "/health"),
    }
    health = next(r for r in platform.routes if r.path == "/health")
    assert health.authorizer is None
    public = {"/health", "/openapi.json", "/docs", "/v1/auth/register", "/v1/auth/login", "/v1/auth/refresh"}
    assert {r.path for r in platform.routes if r.authorizer is None} == public
    assert all(r.authorizer == "ApiKeyAuthorizer" for r in platform.routes if r.path not in public)
    kinesis = platform.event_sources("Kinesis")
    assert {s.function for s in kinesis} == {
        "OrdersConsumerFunction",
        "MarketDataConsumerFunction",
        "RiskConsumerFunction",
        "PortfolioConsumerFunction",
        "StreamingFanOutFunction",
        "AlertsFunction",
        "AuditStreamsConsumerFunction",
        "StreamingRevocationsFunction",
        "SurveillanceConsumerFunction",
        "VenueStatsConsumerFunction",
    }
    audit_readers = {"AuditStreamsConsumerFunction", "StreamingRevocationsFunction"}
    for source in kinesis:
        assert source.properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
        destination = source.properties["DestinationConfig"]["OnFailure"]["Destination"]
        expected = (
            "audit-dlq" if source.function in audit_readers
            else "surveillance-dlq" if source.function == "SurveillanceConsumerFunction"
            else "routing-dlq" if source.function == "VenueStatsConsumerFunction"
            else "execution-events-dlq"
        )  # fmt: skip
        assert destination.endswith(expected)
    assert {"matching", "marketmaker"} <= {c.name for c in platform.containers}
    engine = next(c for c in platform.containers if c.name == "matching")
    assert engine.command == ("python", "-m", "nexus_matching")
    assert {p.name for p in engine.python_path} == {"common", "matching"}


def test_image_python_path_follows_a_builder_stage(tmp_path: Path) -> None:
    # GIVEN a two-stage Dockerfile: a builder compiles a package, the runtime copies it from there
    (tmp_path / "pkgs" / "engine").mkdir(parents=True)
    (tmp_path / "lib" / "shared").mkdir(parents=True)
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11 AS build\n"
        "COPY pkgs/engine /build/engine\n"
        "RUN cythonize -i engine/core.py\n"
        "FROM python:3.11-slim\n"
        "ENV PYTHONPATH=/app\n"
        "COPY lib/shared /app/shared\n"
        "COPY --from=build /build/engine /app/engine\n"
        "COPY --from=other /elsewhere/x /app/x\n"
    )
    # THEN both packages are found in the local folders they come from, the unknown stage is ignored
    assert _image_python_path(tmp_path, dockerfile) == ((tmp_path / "lib").resolve(), (tmp_path / "pkgs").resolve())


def test_image_python_path_needs_a_package_on_the_path(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM python:3.11\nENV PYTHONPATH=/app\nCOPY x /opt/x\n")
    with pytest.raises(TemplateError):
        _image_python_path(tmp_path, tmp_path / "Dockerfile")
