"""The local API Gateway's HTTP server answers every method, routed or not, in the error body the
template's ``GatewayResponses`` declare: what API Gateway answers on AWS, never http.server's HTML."""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nexus.local.apigw import LocalApiGateway, make_server
from nexus.local.lambdas import LocalLambda
from nexus.local.model import build_platform
from nexus.local.template import Stack, load_stack

ROOT = Path(__file__).resolve().parents[3]


class LocalNames:
    """Physical ids as the local runtime names the API (``local-api``) and function ARNs."""

    def ref(self, stack: Stack, logical_id: str) -> Any:
        return f"local-{logical_id.lower()}"

    def get_att(self, stack: Stack, logical_id: str, attribute: str) -> Any:
        return f"arn:{logical_id}.{attribute}"


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, int]]:
    platform = build_platform(load_stack(ROOT / "template.yaml", LocalNames(), {"Stage": "test"}))
    # No function runs here: a request no route declares never reaches a function.
    gateway = LocalApiGateway(platform, LocalLambda({}, {}, "us-east-1", "123456789012"), "us-east-1", "123456789012")
    httpd = make_server(gateway, "127.0.0.1", 0)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", httpd.server_address[1]
    finally:
        httpd.shutdown()
        httpd.server_close()


def request(server: tuple[str, int], method: str, path: str) -> tuple[int, str, Any]:
    connection = http.client.HTTPConnection(*server, timeout=10)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        raw = response.read()
        return response.status, response.getheader("Content-Type") or "", json.loads(raw)
    finally:
        connection.close()


NO_SUCH_ROUTE = {"error": {"code": "not_found", "message": "no such route"}}


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "PROPFIND", "BREW"])
def test_a_method_no_route_declares_gets_the_gateway_answer_in_the_error_body(
    server: tuple[str, int], method: str
) -> None:
    # GIVEN the API the template declares (GET /v1/portfolio exists; no route takes these methods)
    # WHEN a client sends such a method to a path that exists
    status, content_type, body = request(server, method, "/v1/portfolio")
    # THEN the answer is the template's MISSING_AUTHENTICATION_TOKEN response, as on AWS, in JSON
    assert (status, content_type, body) == (404, "application/json", NO_SUCH_ROUTE)


def test_an_undeclared_method_on_a_declared_path_answers_as_an_unknown_path(server: tuple[str, int]) -> None:
    # GIVEN GET /v1/portfolio is declared and DELETE is not
    # WHEN DELETE /v1/portfolio and GET /v1/nowhere are sent
    # THEN both get the same answer (API Gateway tells them apart no more than this)
    assert request(server, "DELETE", "/v1/portfolio")[::2] == request(server, "GET", "/v1/nowhere")[::2]
    assert request(server, "DELETE", "/v1/portfolio")[2] == NO_SUCH_ROUTE


def test_a_request_http_server_refuses_is_answered_in_the_error_body(server: tuple[str, int]) -> None:
    # GIVEN a client that sends more headers than the server reads
    headers = b"".join(b"X-Filler-%d: x\r\n" % i for i in range(101))
    with socket.create_connection(server, timeout=10) as raw:
        raw.sendall(b"GET /v1/portfolio HTTP/1.1\r\nHost: local\r\n" + headers + b"\r\n")
        answer = b""
        while chunk := raw.recv(4096):
            answer += chunk
    # WHEN the server refuses it
    head, _, body = answer.partition(b"\r\n\r\n")
    # THEN the refusal is JSON in the NexusTrade error shape, not an HTML page
    assert head.split(b"\r\n")[0].startswith(b"HTTP/1.1 431")
    assert b"Content-Type: application/json" in head
    assert json.loads(body)["error"]["code"] == "request_header_fields_too_large"
