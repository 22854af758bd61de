"""Requests to the embedded AWS go over lean HTTP connections, with the SDK's answers, errors and
retries; requests anywhere else go through urllib3."""

from __future__ import annotations

import copy
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC
from decimal import Decimal
from typing import Any

import boto3
import boto3.dynamodb.transform
import botocore.session
import pytest
from boto3.dynamodb.conditions import Attr
from botocore.awsrequest import AWSResponse
from botocore.client import BaseClient
from botocore.config import Config
from botocore.exceptions import (
    ConnectionClosedError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.httpsession import URLLib3Session
from botocore.serialize import JSONSerializer
from helpers import eventually
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.local import transport

KEYS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}
NO_RETRY = Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1, read_timeout=1)


@pytest.fixture
def restored(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a test installs is undone after it."""
    monkeypatch.setattr(URLLib3Session, "send", URLLib3Session.send)
    monkeypatch.setattr(BaseClient, "_resolve_endpoint_ruleset", BaseClient._resolve_endpoint_ruleset)
    monkeypatch.setattr(boto3.dynamodb.transform, "copy_dynamodb_params", boto3.dynamodb.transform.copy_dynamodb_params)
    monkeypatch.setattr(transport, "_endpoints", ())
    monkeypatch.setattr(JSONSerializer, "_serialize", JSONSerializer._serialize)


def _lean_pool(client: Any) -> transport.LeanPool:
    return transport.pool_of(client._endpoint.http_session)


def test_the_embedded_aws_answers_over_lean_connections_as_over_urllib3(embedded_endpoint: str, restored: None) -> None:
    # GIVEN the lean transport installed for the embedded AWS
    assert transport.install(embedded_endpoint)
    dynamodb = boto3.client("dynamodb", endpoint_url=embedded_endpoint, **KEYS)
    kinesis = boto3.client("kinesis", endpoint_url=embedded_endpoint, **KEYS)
    sqs = boto3.client("sqs", endpoint_url=embedded_endpoint, **KEYS)
    # WHEN a table, a stream and a queue are made, written and read (binary, non-ASCII, errors)
    dynamodb.create_table(TableName="lean", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                          AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                          BillingMode="PAY_PER_REQUEST")  # fmt: skip
    item = {"pk": {"S": "ä€"}, "n": {"N": "1.50"}, "b": {"B": b"\x00\xff" * 3000}, "l": {"L": [{"S": "x"}]}}
    dynamodb.put_item(TableName="lean", Item=item)
    got = dynamodb.get_item(TableName="lean", Key={"pk": {"S": "ä€"}}, ConsistentRead=True)["Item"]
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException) as failed:
        dynamodb.put_item(TableName="lean", Item=item, ConditionExpression="attribute_not_exists(pk)")
    kinesis.create_stream(StreamName="lean", ShardCount=1)
    kinesis.put_record(StreamName="lean", Data=b"record-1", PartitionKey="p")
    shard = kinesis.list_shards(StreamName="lean")["Shards"][0]["ShardId"]
    iterator = kinesis.get_shard_iterator(StreamName="lean", ShardId=shard, ShardIteratorType="TRIM_HORIZON")
    records = kinesis.get_records(ShardIterator=iterator["ShardIterator"])["Records"]
    queue = sqs.create_queue(QueueName="lean")["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="m€ssage")
    messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)["Messages"]
    # THEN every answer is the server's, errors included
    assert got == item
    assert failed.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    assert [record["Data"] for record in records] == [b"record-1"]
    assert [message["Body"] for message in messages] == ["m€ssage"]
    # ... each client's requests went over one kept-alive lean connection
    for client in (dynamodb, kinesis, sqs):
        assert _lean_pool(client).made == 1
        assert len(_lean_pool(client).idle) == 1
    # AND a client without the transport reads the same item through urllib3
    URLLib3Session.send = transport._urllib3_send  # undone by ``restored``
    plain = boto3.client("dynamodb", endpoint_url=embedded_endpoint, **KEYS)
    assert plain.get_item(TableName="lean", Key={"pk": {"S": "ä€"}}, ConsistentRead=True)["Item"] == got
    assert "_nexus_lean_pool" not in plain._endpoint.http_session.__dict__


def test_requests_anywhere_else_go_through_urllib3(embedded_endpoint: str, restored: None) -> None:
    # GIVEN the transport installed for an endpoint whose address the embedded one's only starts like
    host, port = embedded_endpoint.rsplit(":", 1)
    transport.install(f"{host}:{port[:-1]}")
    client = boto3.client("dynamodb", endpoint_url=embedded_endpoint, **KEYS)
    # WHEN a request goes to the embedded AWS (another endpoint, for this process)
    client.list_tables()
    # THEN it went through urllib3, not a lean connection
    assert "_nexus_lean_pool" not in client._endpoint.http_session.__dict__
    # AND nothing is installed for no endpoint, or an HTTPS one
    assert transport.install("") is False
    assert transport.install("https://localstack:4566") is False


class _RawServer:
    """A TCP server on the loopback interface that answers each connection with ``handle``."""

    def __init__(self, handle: Callable[[socket.socket, int], None]) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.endpoint = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.handle = handle
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._one, args=(conn, self.connections), daemon=True).start()

    def _one(self, conn: socket.socket, number: int) -> None:
        with conn:
            self.handle(conn, number)

    def close(self) -> None:
        self.listener.close()


def _read_request(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        part = conn.recv(65536)
        if not part:
            return data
        data += part
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")), 0
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head


TABLES = b'{"TableNames": ["t"]}'


def _answer(body: bytes = TABLES, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\n" + extra + \
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body  # fmt: skip


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket, int], None]], _RawServer]]:
    servers: list[_RawServer] = []

    def make(handle: Callable[[socket.socket, int], None]) -> _RawServer:
        servers.append(_RawServer(handle))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def _client(endpoint: str, config: Config = NO_RETRY) -> Any:
    transport.install(endpoint)
    return boto3.client("dynamodb", endpoint_url=endpoint, config=config, **KEYS)


def test_answers_in_chunks_after_a_continue_with_repeated_headers_are_read(raw_server: Any, restored: None) -> None:
    heads: list[bytes] = []

    def handle(conn: socket.socket, _: int) -> None:
        while head := _read_request(conn):
            heads.append(head)
            chunked = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(part), part) for part in (TABLES[:5], TABLES[5:]))
            conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n" + b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
                         b"X-Twice: a\r\nx-twice: b\r\n\r\n" + chunked + b"0\r\nTrailer: t\r\n\r\n")  # fmt: skip

    server = raw_server(handle)
    client = _client(server.endpoint)
    answers = [client.list_tables() for _ in range(3)]
    # the body is joined from its chunks, repeated headers are joined, and the connection kept
    assert [answer["TableNames"] for answer in answers] == [["t"]] * 3
    assert answers[0]["ResponseMetadata"]["HTTPHeaders"]["x-twice"] == "a, b"
    assert server.connections == 1
    # the request was HTTP/1.1 with its host, length and the SDK's headers
    request_line, *lines = heads[0].decode().split("\r\n")
    assert request_line == "POST / HTTP/1.1"
    names = {line.split(":")[0].lower(): line.split(":", 1)[1].strip() for line in lines}
    assert names["host"] == server.endpoint.removeprefix("http://")
    assert names["x-amz-target"] == "DynamoDB_20120810.ListTables"
    assert int(names["content-length"]) == 2


def test_a_connection_the_server_closed_is_replaced_and_close_is_honoured(raw_server: Any, restored: None) -> None:
    def handle(conn: socket.socket, number: int) -> None:
        if number == 1:  # answers once, then closes while idle
            _read_request(conn)
            conn.sendall(_answer())
            return
        if number == 2:  # answers, asking the client to close
            _read_request(conn)
            conn.sendall(_answer(extra=b"Connection: close\r\n"))
            return
        while _read_request(conn):
            conn.sendall(_answer())

    server = raw_server(handle)
    client = _client(server.endpoint)
    client.list_tables()
    assert eventually(lambda: bool(_lean_pool(client).idle) and _lean_pool(client).idle[0].dropped(), bool)
    client.list_tables()  # the closed connection is noticed before use: a new one, which asks to close
    assert not _lean_pool(client).idle  # "Connection: close" is honoured
    client.list_tables()  # a third, kept
    assert len(_lean_pool(client).idle) == 1
    client.list_tables()
    assert server.connections == 3
    assert _lean_pool(client).made == 3


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (b"", ConnectionClosedError),  # closed before answering
        (b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{", ConnectionClosedError),  # a short body
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", ConnectionClosedError),  # a bad length
        (b"SSH-2.0-OpenSSH\r\n\r\n", ConnectionClosedError),  # not HTTP
        (b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 101 + b"\r\n", ConnectionClosedError),  # too many headers
        (b"HTTP/1.1 200 OK\r\n" + b"X: " + b"y" * 70000 + b"\r\n\r\n", ConnectionClosedError),  # too long a line
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", ConnectionClosedError),  # a bad chunk
    ],
)
def test_broken_answers_are_the_sdk_errors_it_retries(
    raw_server: Any, restored: None, answer: bytes, error: type[Exception]
) -> None:
    def handle(conn: socket.socket, _: int) -> None:
        _read_request(conn)
        conn.sendall(answer)

    server = raw_server(handle)
    # GIVEN a client that tries twice
    client = _client(server.endpoint, NO_RETRY.merge(Config(retries={"mode": "standard", "total_max_attempts": 2})))
    with pytest.raises(error):
        client.list_tables()
    # THEN the SDK retried it on a new connection, and no broken connection was kept
    assert server.connections == 2
    assert not _lean_pool(client).idle


def test_an_answer_that_does_not_come_is_a_read_timeout(raw_server: Any, restored: None) -> None:
    done = threading.Event()

    def handle(conn: socket.socket, _: int) -> None:
        _read_request(conn)
        done.wait(10)

    server = raw_server(handle)
    client = _client(server.endpoint, NO_RETRY)
    try:
        with pytest.raises(ReadTimeoutError):
            client.list_tables()
    finally:
        done.set()
    assert not _lean_pool(client).idle


def test_a_refused_connection_is_an_endpoint_connection_error(restored: None) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        endpoint = f"http://127.0.0.1:{taken.getsockname()[1]}"
    client = _client(endpoint, NO_RETRY)  # nobody listens there any more
    with pytest.raises(EndpointConnectionError):
        client.list_tables()


def test_a_header_that_would_start_another_is_refused_unsent(raw_server: Any, restored: None) -> None:
    server = raw_server(lambda conn, _: None)
    client = _client(server.endpoint, NO_RETRY)
    client.meta.events.register("before-send", _inject_header)
    with pytest.raises(HTTPClientError):
        client.list_tables()
    assert server.connections == 0


def _inject_header(request: Any, **_: Any) -> None:
    request.headers["X-Evil"] = "x\r\nX-Injected: 1"


class _Answer:
    """The raw body of an answer no server gave: an empty JSON object."""

    @staticmethod
    def stream(**_: Any) -> Iterator[bytes]:
        yield b"{}"


def _answered_here(client: Any) -> list[Any]:
    """Answer ``client``'s requests with ``{}`` before they are sent; the requests, as sent."""
    sent: list[Any] = []

    def answer(request: Any, **_: Any) -> AWSResponse:
        sent.append(request)
        return AWSResponse(request.url, 200, {}, _Answer())

    client.meta.events.register("before-send", answer)
    return sent


def _resolutions(client: Any) -> list[str]:
    """Each ruleset resolution ``client`` makes, by operation (the resolver still resolves)."""
    resolver, made = client._ruleset_resolver, []
    construct = resolver.construct_endpoint

    def counted(operation_model: Any, *args: Any, **kwargs: Any) -> Any:
        made.append(operation_model.name)
        return construct(operation_model, *args, **kwargs)

    resolver.construct_endpoint = counted
    return made


def test_the_embedded_aws_endpoint_is_resolved_once_per_client_and_operation(restored: None) -> None:
    # GIVEN the transport installed for the embedded AWS, a client of it and one of another AWS
    assert transport.install("http://127.0.0.1:4566")
    embedded = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:4566", **KEYS)
    elsewhere = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:4567", **KEYS)
    for client in (embedded, elsewhere):
        sent, resolved = _answered_here(client), _resolutions(client)
        # WHEN each makes three GetItem on two tables and a BatchGetItem
        for table in ("a", "b", "a"):
            client.get_item(TableName=table, Key={"pk": {"S": "1"}})
        client.batch_get_item(RequestItems={"a": {"Keys": [{"pk": {"S": "1"}}]}})
        # THEN every request went to the client's endpoint
        assert [request.url for request in sent] == [client.meta.endpoint_url + "/"] * 4
        # ... resolved once per operation for the embedded AWS, on every call elsewhere
        expected = ["GetItem", "BatchGetItem"] if client is embedded else ["GetItem"] * 3 + ["BatchGetItem"]
        assert resolved == expected


def test_a_resolution_that_gives_more_than_the_endpoint_is_made_on_every_call(restored: None) -> None:
    # GIVEN a client of the embedded AWS whose ruleset answers with a header (as S3's may)
    assert transport.install("http://127.0.0.1:4566")
    client = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:4566", **KEYS)
    sent, resolved = _answered_here(client), _resolutions(client)
    construct = client._ruleset_resolver.construct_endpoint
    client._ruleset_resolver.construct_endpoint = lambda *a, **k: construct(*a, **k)._replace(headers={"x-h": "1"})
    # WHEN it calls twice
    client.list_tables()
    client.list_tables()
    # THEN each call was resolved, and sent with what its resolution gave
    assert resolved == ["ListTables", "ListTables"]
    assert [request.headers["x-h"] for request in sent] == [b"1", b"1"]


def test_a_resources_parameters_are_copied_as_containers_and_the_callers_stay_as_they_were(restored: None) -> None:
    # GIVEN the transport installed, and a table resource of the embedded AWS
    assert transport.install("http://127.0.0.1:4566")
    table = boto3.resource("dynamodb", endpoint_url="http://127.0.0.1:4566", **KEYS).Table("t")
    sent = _answered_here(table.meta.client)
    item = {"pk": "1", "n": Decimal("1.50"), "m": {"l": [Decimal(2), {"s": {"x", "y"}}], "b": b"\x00"}}
    before = copy.deepcopy(item)
    # WHEN an item with nested maps, lists and a set is put, with a condition built from objects
    table.put_item(Item=item, ConditionExpression=Attr("pk").not_exists())
    # THEN what was sent is the item serialized, and the caller's item did not change
    body = json.loads(sent[0].body)
    assert body["Item"]["m"]["M"]["l"]["L"][1]["M"]["s"]["SS"] in (["x", "y"], ["y", "x"])
    assert body["Item"]["n"] == {"N": "1.50"} and body["ConditionExpression"] == "attribute_not_exists(#n0)"
    assert item == before
    # AND the copy is boto3's deep copy's equal, sharing the values it holds
    copied = transport.copy_params({"Item": item, "Keys": [item]})
    assert copied == copy.deepcopy({"Item": item, "Keys": [item]})
    assert copied["Item"] is not item and copied["Item"]["m"]["l"] is not item["m"]["l"]
    assert copied["Item"]["m"]["l"][1]["s"] is item["m"]["l"][1]["s"]


_MODELS = botocore.session.get_session()


def _body(serialize: Callable[..., None], serializer: JSONSerializer, service: str, operation: str,
          params: dict[str, Any]) -> str:  # fmt: skip
    """The JSON body ``serialize`` writes for these parameters, or the error it raised."""
    shape = _MODELS.get_service_model(service).operation_model(operation).input_shape
    out: dict[str, Any] = {}
    try:
        serialize(serializer, out, params, shape)
    except Exception as exc:  # noqa: BLE001 - compared with botocore's own
        return f"{type(exc).__name__}: {exc}"
    return json.dumps(out)


_scalar = st.one_of(
    st.fixed_dictionaries({"S": st.text(max_size=5)}), st.fixed_dictionaries({"N": st.sampled_from(["1", "-2.50"])}),
    st.fixed_dictionaries({"B": st.binary(max_size=5)}), st.fixed_dictionaries({"BOOL": st.booleans()}),
    st.fixed_dictionaries({"NULL": st.just(True)}),
    st.fixed_dictionaries({"SS": st.lists(st.text(max_size=3), max_size=3)}),
    st.fixed_dictionaries({"BS": st.lists(st.binary(max_size=3), max_size=3)}),
)  # fmt: skip
_value = st.recursive(_scalar, lambda inner: st.one_of(
    st.fixed_dictionaries({"M": st.dictionaries(st.text(max_size=4), inner, max_size=3)}),
    st.fixed_dictionaries({"L": st.lists(inner, max_size=3)})), max_leaves=12)  # fmt: skip
_item = st.dictionaries(st.text(min_size=1, max_size=4), _value, max_size=4)
_requests = st.one_of(
    st.builds(lambda item: ("dynamodb", "PutItem", {"TableName": "t", "Item": item, "ConditionExpression": "x",
                                                     "ReturnValues": "NONE"}), _item),
    st.builds(lambda item, limit: ("dynamodb", "Query", {"TableName": "t", "ExclusiveStartKey": item, "Limit": limit,
                                                          "ScanIndexForward": False}), _item, st.integers(1, 99)),
    st.builds(lambda items: ("dynamodb", "BatchWriteItem", {"RequestItems": {"t": [{"PutRequest": {"Item": i}}
                                                                                  for i in items]}}),
              st.lists(_item, max_size=3)),
    st.builds(lambda data, when: ("kinesis", "PutRecords", {"StreamName": "s", "Records": [
        {"Data": data, "PartitionKey": "p"}, {"Data": data.hex(), "PartitionKey": "q"}]}),
        st.binary(max_size=8), st.datetimes()),
    st.builds(lambda when: ("kinesis", "GetShardIterator", {"StreamName": "s", "ShardId": "0",
                                                            "ShardIteratorType": "AT_TIMESTAMP", "Timestamp": when}),
              st.one_of(st.datetimes(timezones=st.just(UTC)), st.integers(0, 2**31))),
    st.builds(lambda body, raw: ("sqs", "SendMessage", {"QueueUrl": "q", "MessageBody": body, "MessageAttributes": {
        "a": {"DataType": "Binary", "BinaryValue": raw}, "b": {"DataType": "String", "StringValue": body}}}),
        st.text(max_size=5), st.binary(max_size=5)),
    st.builds(lambda target: ("application-autoscaling", "PutScalingPolicy", {
        "PolicyName": "p", "ServiceNamespace": "dynamodb", "ResourceId": "table/t",
        "ScalableDimension": "dynamodb:table:ReadCapacityUnits",
        "TargetTrackingScalingPolicyConfiguration": {"TargetValue": target}}),
        st.one_of(st.floats(), st.decimals(allow_nan=False, places=2))),
    st.builds(lambda item: ("dynamodb", "PutItem", {"TableName": "t", "Item": item, "NotAMember": 1}), _item),
    st.builds(lambda: ("dynamodb", "GetItem", {"TableName": "t", "Key": {"pk": {"M": None}}})),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_requests)
def test_a_request_is_serialized_as_botocore_serializes_it(request: tuple[str, str, dict[str, Any]]) -> None:
    # GIVEN any request of DynamoDB (nested attribute values, binary ones too), Kinesis (blobs,
    # timestamps), SQS and a service with a double member, some with a member the shape lacks
    service, operation, params = request
    ours, theirs = JSONSerializer(), JSONSerializer()
    # WHEN it is serialized twice by the converters made once per shape, and by botocore
    first = _body(transport._json_serialize, ours, service, operation, copy.deepcopy(params))
    again = _body(transport._json_serialize, ours, service, operation, copy.deepcopy(params))
    # THEN the body is botocore's, byte for byte (or the error is)
    assert first == again == _body(transport._botocore_json_serialize, theirs, service, operation, params)


def test_the_converters_are_made_once_per_shape_and_used_by_a_client_of_the_embedded_aws(restored: None) -> None:
    # GIVEN the transport installed, and a table resource of the embedded AWS
    assert transport.install("http://127.0.0.1:4566")
    client = boto3.client("dynamodb", endpoint_url="http://127.0.0.1:4566", **KEYS)
    sent = _answered_here(client)
    # WHEN it puts two items
    for n in ("1", "2"):
        client.put_item(TableName="t", Item={"pk": {"S": n}, "b": {"B": b"\x00\xff"}, "l": {"L": [{"N": n}]}})
    # THEN what was sent is what botocore writes, and the converters were made by the first call
    assert json.loads(sent[1].body) == {"TableName": "t", "Item": {"pk": {"S": "2"}, "b": {"B": "AP8="},
                                                                   "l": {"L": [{"N": "2"}]}}}  # fmt: skip
    serializer = getattr(client._serializer, "_serializer", client._serializer)  # inside the validation
    made = serializer.__dict__["_nexus_converters"]
    assert {key[1] for key in made} >= {"PutItemInput", "AttributeValue", "PutItemInputAttributeMap"}


def test_member_names_and_timestamp_formats_given_on_a_member_are_written_as_botocore_writes_them() -> None:
    from datetime import datetime

    from botocore.model import ServiceModel

    # GIVEN a model (no JSON service of the SDK's uses these traits today) whose input renames
    # a member, gives a timestamp format on a member, and holds itself
    model = ServiceModel({
        "metadata": {"protocol": "json", "jsonVersion": "1.0", "targetPrefix": "T", "serviceId": "T",
                     "endpointPrefix": "t", "signatureVersion": "v4"},
        "operations": {"Op": {"name": "Op", "http": {"method": "POST", "requestUri": "/"}, "input": {"shape": "In"}}},
        "shapes": {
            "In": {"type": "structure", "members": {
                "a": {"shape": "Str", "locationName": "A"},
                "when": {"shape": "Time", "timestampFormat": "iso8601"},
                "plain": {"shape": "Time"},
                "next": {"shape": "In"}}},
            "Str": {"type": "string"},
            "Time": {"type": "timestamp"},
        },
    }, service_name="t")  # fmt: skip
    shape = model.operation_model("Op").input_shape
    params = {"a": "x", "when": datetime(2026, 12, 5, tzinfo=UTC), "plain": datetime(2026, 12, 5, tzinfo=UTC),
              "next": {"a": "y", "next": {"when": 0}}}  # fmt: skip
    ours: dict[str, Any] = {}
    theirs: dict[str, Any] = {}
    # WHEN the parameters are serialized by the converters and by botocore
    transport._json_serialize(JSONSerializer(), ours, params, shape)
    transport._botocore_json_serialize(JSONSerializer(), theirs, params, shape)
    # THEN both write the member's given name and each timestamp in its format, at every depth
    assert json.dumps(ours) == json.dumps(theirs)
    assert ours == {"A": "x", "when": "2026-12-05T00:00:00Z", "plain": 1796428800,
                    "next": {"A": "y", "next": {"when": "1970-01-01T00:00:00Z"}}}  # fmt: skip
