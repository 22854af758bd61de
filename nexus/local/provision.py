"""Create every resource the template declares, on moto server, LocalStack or moto's mock_aws.

``Provisioner`` is the ``Materializer`` of ``nexus.local.template``: it gives each resource its
physical id and attributes, creating it on first use when ``create`` is true (so resources come up
in dependency order), or only computing/looking them up when false (for operator commands that
talk to an already running platform). Resource types that have no local meaning (IAM roles, log
groups, ECS clusters, permissions) get a stable synthetic id and are otherwise left alone.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.config import Config
from botocore.exceptions import ClientError
from nexus_common import aws

from nexus.local.template import Resource, Stack, TemplateError, load_stack

log = logging.getLogger("nexus.local")

PROJECT_ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = PROJECT_ROOT / "template.yaml"

# Types that have a local effect. Anything else is declared-only locally (IAM, logs, ECS
# clusters, permissions, the API deployment): given a synthetic id, never an error.
CREATED_TYPES = (
    "AWS::DynamoDB::Table",
    "AWS::Kinesis::Stream",
    "AWS::SQS::Queue",
    "AWS::SecretsManager::Secret",
)


@dataclass
class AwsClients:
    """boto3 clients for one endpoint (None = real AWS, or moto's mock_aws when patched)."""

    endpoint_url: str | None = None
    region: str = "us-east-1"
    _cache: dict[str, Any] = field(default_factory=dict)

    def client(self, service: str) -> Any:
        if service not in self._cache:
            with aws.client_lock:  # the process's session: its models are read once
                self._cache[service] = aws.session(self.region).client(
                    service,
                    region_name=self.region,
                    endpoint_url=self.endpoint_url,
                    config=Config(retries={"max_attempts": 5, "mode": "standard"}, max_pool_connections=50),
                )
        return self._cache[service]


class Provisioner:
    """Materializer that creates (or looks up) the template's resources."""

    def __init__(self, clients: AwsClients, *, create: bool, account_id: str) -> None:
        self.clients = clients
        self.create = create
        self.account_id = account_id
        self.region = clients.region
        self._physical: dict[str, Any] = {}
        self._attributes: dict[tuple[str, str], Any] = {}
        self._in_progress: set[str] = set()

    # -- Materializer ----------------------------------------------------------------------

    def ref(self, stack: Stack, logical_id: str) -> Any:
        resource = stack.resources[logical_id]
        self._materialize(resource)
        return self._physical[resource.qualified_id]

    def get_att(self, stack: Stack, logical_id: str, attribute: str) -> Any:
        resource = stack.resources[logical_id]
        self._materialize(resource)
        key = (resource.qualified_id, attribute)
        if key not in self._attributes:
            self._attributes[key] = self._lookup_attribute(resource, attribute)
        return self._attributes[key]

    # -- creation --------------------------------------------------------------------------

    def create_all(self, root: Stack) -> None:
        for resource in root.all_resources():
            if resource.type in CREATED_TYPES:
                self._materialize(resource)

    def _materialize(self, resource: Resource) -> None:
        qid = resource.qualified_id
        if qid in self._physical:
            return
        if qid in self._in_progress:
            raise TemplateError(f"circular reference through {qid}")
        self._in_progress.add(qid)
        try:
            handler = getattr(self, "_make_" + resource.type.replace("::", "_"), None)
            self._physical[qid] = handler(resource) if handler else self._synthetic(resource)
        finally:
            self._in_progress.discard(qid)

    def _arn(self, service: str, suffix: str) -> str:
        return f"arn:aws:{service}:{self.region}:{self.account_id}:{suffix}"

    def _name(self, resource: Resource, key: str) -> str:
        name = resource.resolved(key)
        if not name:
            name = f"{resource.stack.pseudo['AWS::StackName']}-{resource.logical_id}"
        return str(name)

    def _synthetic(self, resource: Resource) -> str:
        if resource.type == "AWS::Serverless::Function":
            return self._name(resource, "FunctionName")
        if resource.type == "AWS::Serverless::LayerVersion":
            return self._arn("lambda", f"layer:{self._name(resource, 'LayerName')}:1")
        return f"local-{resource.logical_id.lower()}"

    def _make_AWS_DynamoDB_Table(self, resource: Resource) -> str:
        name = self._name(resource, "TableName")
        if not self.create:
            return name
        props = resource.stack.resolve(resource.properties)
        billing = props.get("BillingMode", "PROVISIONED")
        args: dict[str, Any] = {
            "TableName": name,
            "KeySchema": props["KeySchema"],
            "AttributeDefinitions": props["AttributeDefinitions"],
            "BillingMode": billing,
        }
        if billing != "PAY_PER_REQUEST":
            args["ProvisionedThroughput"] = props.get(
                "ProvisionedThroughput", {"ReadCapacityUnits": 5, "WriteCapacityUnits": 5}
            )
        for key in ("GlobalSecondaryIndexes", "LocalSecondaryIndexes"):
            if key in props:
                indexes = [dict(ix) for ix in props[key]]
                if billing == "PAY_PER_REQUEST":
                    for ix in indexes:
                        ix.pop("ProvisionedThroughput", None)
                args[key] = indexes
        stream = props.get("StreamSpecification")
        if stream:
            args["StreamSpecification"] = {"StreamEnabled": True, "StreamViewType": stream["StreamViewType"]}
        client = self.clients.client("dynamodb")
        try:
            client.create_table(**args)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
        client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
        ttl = props.get("TimeToLiveSpecification")
        if ttl and ttl.get("Enabled"):
            client.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        log.debug("table %s", name)
        return name

    def _make_AWS_Kinesis_Stream(self, resource: Resource) -> str:
        name = self._name(resource, "Name")
        if not self.create:
            return name
        client = self.clients.client("kinesis")
        shards = int(resource.resolved("ShardCount", 1))
        try:
            client.create_stream(StreamName=name, ShardCount=shards)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ResourceInUseException":
                raise
        for _ in range(200):
            status = client.describe_stream_summary(StreamName=name)["StreamDescriptionSummary"]
            if status["StreamStatus"] == "ACTIVE":
                break
            time.sleep(0.1)
        hours = resource.resolved("RetentionPeriodHours")
        if hours and int(hours) > 24:
            try:
                client.increase_stream_retention_period(StreamName=name, RetentionPeriodHours=int(hours))
            except ClientError as exc:  # already at that retention after a restart
                log.debug("retention of %s: %s", name, exc)
        return name

    def _make_AWS_SQS_Queue(self, resource: Resource) -> str:
        name = self._name(resource, "QueueName")
        client = self.clients.client("sqs")
        if not self.create:
            return str(client.get_queue_url(QueueName=name)["QueueUrl"])
        props = resource.stack.resolve(resource.properties)
        attributes: dict[str, str] = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "ReceiveMessageWaitTimeSeconds",
            "MaximumMessageSize",
            "FifoQueue",
            "ContentBasedDeduplication",
        ):
            if key in props:
                value = props[key]
                attributes[key] = str(value).lower() if isinstance(value, bool) else str(value)
        if "RedrivePolicy" in props:
            policy = props["RedrivePolicy"]
            attributes["RedrivePolicy"] = policy if isinstance(policy, str) else json.dumps(policy)
        url = client.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        return str(url)

    def _make_AWS_SecretsManager_Secret(self, resource: Resource) -> str:
        name = self._name(resource, "Name")
        client = self.clients.client("secretsmanager")
        if self.create:
            secret = resource.resolved("SecretString")
            generate = resource.resolved("GenerateSecretString")
            if secret is None and isinstance(generate, dict):  # as CloudFormation does: a random value
                secret = client.get_random_password(
                    PasswordLength=int(generate.get("PasswordLength", 32)),
                    ExcludePunctuation=bool(generate.get("ExcludePunctuation", False)),
                )["RandomPassword"]
            try:
                client.create_secret(Name=name, SecretString=secret or "")
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ResourceExistsException":
                    raise
        return str(client.describe_secret(SecretId=name)["ARN"])

    # -- attributes ------------------------------------------------------------------------

    def _lookup_attribute(self, resource: Resource, attribute: str) -> Any:
        physical = self._physical[resource.qualified_id]
        kind = resource.type
        if kind == "AWS::DynamoDB::Table":
            if attribute == "Arn":
                return self._arn("dynamodb", f"table/{physical}")
            if attribute == "StreamArn":
                table = self.clients.client("dynamodb").describe_table(TableName=physical)["Table"]
                return table["LatestStreamArn"]
        if kind == "AWS::Kinesis::Stream" and attribute == "Arn":
            return self._arn("kinesis", f"stream/{physical}")
        if kind == "AWS::SQS::Queue":
            name = physical.rsplit("/", 1)[-1]
            if attribute == "Arn":
                return self._arn("sqs", name)
            if attribute == "QueueName":
                return name
            if attribute == "QueueUrl":
                return physical
        if kind == "AWS::Serverless::Function" and attribute == "Arn":
            return self._arn("lambda", f"function:{physical}")
        if attribute == "Arn":
            service = kind.split("::")[1].lower()
            return self._arn(service, f"{resource.logical_id.lower()}/{physical}")
        return f"{physical}.{attribute}"


def account_id_of(clients: AwsClients) -> str:
    return str(clients.client("sts").get_caller_identity()["Account"])


def load(
    clients: AwsClients,
    *,
    create: bool,
    parameters: Mapping[str, Any] | None = None,
    template: Path = TEMPLATE,
) -> tuple[Stack, Provisioner]:
    """Load the template tree; with ``create`` make every resource it declares."""
    provisioner = Provisioner(clients, create=create, account_id=account_id_of(clients))
    stack = load_stack(
        template,
        provisioner,
        parameters,
        {"AWS::Region": clients.region, "AWS::AccountId": provisioner.account_id},
    )
    if create:
        provisioner.create_all(stack)
    return stack, provisioner
