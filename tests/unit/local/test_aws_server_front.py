"""The embedded AWS's shorter way in for JSON-protocol requests (``nexus.local.aws_server``):
the request line ``POST / HTTP/1.1`` is read without ``http.server``'s parsing, its environ made
from the header pairs, and the request handed to moto's handler as ``_JsonRequest``. Each step
must give moto exactly what the long way gives it."""

from __future__ import annotations

import io
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from moto.dynamodb.responses import DynamoHandler
from moto.dynamodbstreams.responses import DynamoDBStreamsHandler
from moto.kinesis.responses import KinesisResponse
from moto.sqs.responses import SQSResponse
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.test import EnvironBuilder

from nexus.local import aws_server
from nexus.local.aws_server import _JsonRequest, _KeepAliveHandler, _ServerRequest

SCOPE = "AWS4-HMAC-SHA256 Credential=AKIATEST/20261205/eu-west-2/{}/aws4_request, SignedHeaders=host, Signature=0"
VOLATILE = ("wsgi.input", "wsgi.errors", "werkzeug.socket", "REMOTE_PORT", "SERVER_PORT")  # the connection's own


class _Recorder:
    """A WSGI application that keeps each environ it is given (and the body it read) and answers 200."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        terminated = environ.get("wsgi.input_terminated")  # a chunked body: read to its end
        body = environ["wsgi.input"].read() if terminated else environ["wsgi.input"].read(length) if length else b""
        self.seen.append({**{k: v for k, v in environ.items() if k not in VOLATILE}, "body": body})
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


class _LongWay(_KeepAliveHandler):
    """The same server with http.server's request parsing and werkzeug's environ."""

    parse_request = WSGIRequestHandler.parse_request
    make_environ = WSGIRequestHandler.make_environ


@pytest.fixture
def servers() -> Iterator[tuple[tuple[int, _Recorder], tuple[int, _Recorder]]]:
    started = []
    for handler in (_KeepAliveHandler, _LongWay):
        app = _Recorder()
        server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        started.append((server, app))
    try:
        yield (started[0][0].server_port, started[0][1]), (started[1][0].server_port, started[1][1])
    finally:
        for server, _ in started:
            server.shutdown()
            server.server_close()


def _exchange(port: int, raw: bytes) -> bytes:
    """Send raw bytes on a new connection, then close it for writing: everything answered."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(raw)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def _status_lines(answer: bytes) -> list[bytes]:
    return [line for line in answer.split(b"\r\n") if line.startswith(b"HTTP/1.")]


def _undated(answer: bytes) -> bytes:
    """The answer without its Date headers (two servers may answer a second apart)."""
    return b"\r\n".join(line for line in answer.split(b"\r\n") if not line.startswith(b"Date: "))


SDK = (b"Host: 127.0.0.1:4566\r\nAccept-Encoding: identity\r\nX-Amz-Target: DynamoDB_20120810.GetItem\r\n"
       b"Content-Type: application/x-amz-json-1.0\r\nUser-Agent: Boto3/1.35 md/Botocore#1.35 app/nexus-first\r\n"
       b"Authorization: " + SCOPE.format("dynamodb").encode() + b"\r\n")  # fmt: skip
BODY = b'{"TableName": "t", "Key": {"pk": {"S": "k"}}}'
CASES = {
    "an SDK request": b"POST / HTTP/1.1\r\n" + SDK + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY,
    "two requests kept alive": (b"POST / HTTP/1.1\r\n" + SDK + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY) * 2,
    "a header named twice, one with an underscore, one empty": (
        b"POST / HTTP/1.1\r\nX-Amz-Target: A\r\nX-Amz-Target: B\r\nX_Under: u\r\nX-Empty:\r\n"
        b"Content-Length: 2\r\n\r\n{}"),
    "a continuation line (email's parser)": b"POST / HTTP/1.1\r\nX-Folded: one\r\n two\r\nContent-Length: 2\r\n\r\n{}",
    "a multipart content type (email's parser)": (
        b"POST / HTTP/1.1\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 2\r\n\r\n{}"),
    "a chunked body": b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
    "Connection: close": b"POST / HTTP/1.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}",
    "Expect: 100-continue": b"POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n{}",
    "another path and a query": b"POST /x%20y?a=1 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}",
    "HTTP/1.0": b"POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n{}",
}


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_the_environ_and_the_answers_are_those_of_the_long_way(servers: Any, raw: bytes) -> None:
    (short_port, short), (long_port, long) = servers
    # WHEN the same bytes are sent to a server taking the short way and to one taking the long way
    short_answer, long_answer = _exchange(short_port, raw), _exchange(long_port, raw)
    # THEN the application saw the same environs and bodies, and the client got the same status
    # lines (100 Continue included) and bodies
    assert short.seen == long.seen
    assert short.seen and all(environ["body"] in (BODY, b"{}") for environ in short.seen)
    assert _undated(short_answer) == _undated(long_answer)
    assert _status_lines(short_answer)
    assert short_answer.count(b"\r\n\r\nok") == long_answer.count(b"\r\n\r\nok") == len(short.seen)


@pytest.mark.parametrize("raw", [
    b"POST / HTTP/1.1\r\nX-Long: " + b"v" * 70_000 + b"\r\n\r\n",
    b"POST / HTTP/1.1\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(101)) + b"\r\n",
], ids=["a header line too long", "too many headers"])  # fmt: skip
def test_a_header_block_past_http_servers_limits_is_refused_as_it_refuses_it(servers: Any, raw: bytes) -> None:
    (short_port, short), (long_port, long) = servers
    short_answer, long_answer = _exchange(short_port, raw), _exchange(long_port, raw)
    assert _status_lines(short_answer) == _status_lines(long_answer) == [b"HTTP/1.1 431 Line too long"] \
        or _status_lines(short_answer) == _status_lines(long_answer) == [b"HTTP/1.1 431 Too many headers"]
    assert short.seen == long.seen == []


REQUESTS = [
    (DynamoHandler, "dynamodb", "DynamoDB_20120810.UpdateItem", "application/x-amz-json-1.0",
     b'{"TableName": "t", "Key": {"pk": {"S": "a&b=c"}}, "UpdateExpression": "SET n = :n",'
     b' "ExpressionAttributeValues": {":n": {"N": "1.50"}}}'),
    (DynamoHandler, "dynamodb", "DynamoDB_20120810.BatchGetItem", "application/x-amz-json-1.0",
     '{"RequestItems": {"t": {"Keys": [{"pk": {"S": "é"}}]}}}'.encode()),
    (KinesisResponse, "kinesis", "Kinesis_20131202.PutRecord", "application/x-amz-json-1.1",
     b'{"StreamName": "s", "Data": "AAE=", "PartitionKey": "p"}'),
    (DynamoDBStreamsHandler, "dynamodb", "DynamoDBStreams_20120810.GetRecords", "application/x-amz-json-1.0",
     b'{"ShardIterator": "i", "Limit": 5}'),
    (SQSResponse, "sqs", "AmazonSQS.SendMessage", "application/x-amz-json-1.0",
     b'{"QueueUrl": "http://127.0.0.1:4566/123456789012/q", "MessageBody": "x=1&y=2"}'),
]  # fmt: skip


def _environ(scope: str, target: str, content_type: str, body: bytes, **headers: str) -> dict[str, Any]:
    sent = {"X-Amz-Target": target, "Content-Type": content_type, "Authorization": SCOPE.format(scope),
            "User-Agent": "Boto3/1.35", **headers}
    builder = EnvironBuilder(method="POST", path="/", base_url="http://127.0.0.1:4566", data=body, headers=sent)
    environ: dict[str, Any] = builder.get_environ()
    environ["RAW_URI"] = "/"
    return environ


def _set_up(cls: Any, request: Any, setup: Any) -> dict[str, Any]:
    handler = cls()
    setup(handler, request, request.raw_url, dict(request.headers))
    return vars(handler)


@pytest.mark.parametrize(("cls", "scope", "target", "content_type", "body"), REQUESTS,
                         ids=[r[2] for r in REQUESTS])  # fmt: skip
@pytest.mark.parametrize("host", ["127.0.0.1:4566", "localhost:80", "bad host", None])
def test_a_json_request_sets_a_handler_up_as_motos_setup_does(
    cls: Any, scope: str, target: str, content_type: str, body: bytes, host: str | None
) -> None:
    # GIVEN one request read as werkzeug's request (moto's way) and as a _JsonRequest, sent with
    # a Host header with a port, with the default port, with one werkzeug refuses, or with none
    environ = _environ(scope, target, content_type, body)
    if host is None:
        del environ["HTTP_HOST"]
    else:
        environ["HTTP_HOST"] = host
    assert _JsonRequest.fits(environ)
    theirs = _set_up(cls, _ServerRequest({**environ, "wsgi.input": io.BytesIO(body)}), aws_server._moto_setup_class)
    ours = _set_up(cls, _JsonRequest({**environ, "wsgi.input": io.BytesIO(body)}), aws_server._setup_class)
    # THEN every attribute is moto's: the body, the parameters, the region and account, the URL
    # and path, the headers; except the query string moto reads out of the JSON body (names made
    # of pieces of the body), which is not made
    assert ours.keys() == theirs.keys()
    assert dict(ours.pop("headers")) == dict(theirs.pop("headers"))
    assert ours.pop("normalized_request") is not theirs.pop("normalized_request")
    assert list(ours.pop("form_data")) == list(theirs.pop("form_data")) == []
    assert ours.pop("querystring") == ours.pop("data") == {}
    assert theirs.pop("querystring") == theirs.pop("data") != {}
    assert ours == theirs
    assert ours["region"] == "eu-west-2" and ours["body"] == body.decode() and ours["raw_body"] == body
    assert ours["uri"] == {"127.0.0.1:4566": "http://127.0.0.1:4566/", "localhost:80": "http://localhost/",
                           "bad host": "http:/", None: "http://127.0.0.1:4566/"}[host]  # fmt: skip


@pytest.mark.parametrize("extra", [{"QUERY_STRING": "a=1"}, {"HTTP_CONTENT_ENCODING": "gzip"},
                                   {"HTTP_TRANSFER_ENCODING": "chunked"}, {"REQUEST_METHOD": "PUT"},
                                   {"RAW_URI": "/?a=1"}, {"SCRIPT_NAME": "/x"}])  # fmt: skip
def test_a_request_with_a_query_an_encoding_or_another_method_takes_motos_way(extra: dict[str, str]) -> None:
    environ = {**_environ("dynamodb", "DynamoDB_20120810.GetItem", "application/x-amz-json-1.0", b"{}"), **extra}
    assert not _JsonRequest.fits(environ)


def test_an_empty_body_is_set_up_by_motos_own_code(monkeypatch: pytest.MonkeyPatch) -> None:
    # moto fills the query string from the headers when there is no body: that case stays moto's
    calls: list[Any] = []
    monkeypatch.setattr(aws_server, "_moto_setup_class", lambda self, request, *args: calls.append(request))
    request = _JsonRequest(_environ("kinesis", "Kinesis_20131202.ListStreams", "application/x-amz-json-1.1", b""))
    aws_server._setup_class(KinesisResponse(), request)
    assert calls == [request]


def test_text_in_a_json_body_cannot_choose_the_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from moto import mock_aws

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIATEST")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    value = {"S": "k&Action=DeleteTable&x"}
    body = b'{"TableName": "t", "Item": {"pk": {"S": "k&Action=DeleteTable&x"}}}'
    outcomes = []
    for setup in (aws_server._setup_class, aws_server._moto_setup_class):
        with mock_aws():
            # GIVEN a table
            client = boto3.client("dynamodb", region_name="eu-west-2")
            client.create_table(TableName="t", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                                AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                                BillingMode="PAY_PER_REQUEST")  # fmt: skip
            # WHEN a PutItem whose value holds "&Action=DeleteTable&" is set up and answered by moto's handler
            environ = _environ("dynamodb", "DynamoDB_20120810.PutItem", "application/x-amz-json-1.0", body)
            request = _JsonRequest(environ) if setup is aws_server._setup_class else _ServerRequest(environ)
            handler = DynamoHandler()
            setup(handler, request, request.raw_url, dict(request.headers))
            status = handler.call_action()[0]
            tables = client.list_tables()["TableNames"]
            # (read by a Scan: a GetItem naming the value would carry the text, and moto's own client
            # path would delete the table)
            items = client.scan(TableName="t")["Items"] if tables else None
            outcomes.append((status, tables, items))
    # THEN the short way puts the item, the operation X-Amz-Target names; moto's own setup let the
    # body's text choose another operation
    assert outcomes[0] == (200, ["t"], [{"pk": value}])
    assert outcomes[1] == (200, [], None)
