"""Local API Gateway (REST API, Lambda proxy integration) for the APIs the template declares.

A request is matched against the routes declared as ``Api`` events, authorized by the route's
Lambda authorizer (REQUEST type: identity headers checked first, then the function's policy and
context), turned into the proxy event the function expects, and the function's proxy response
turned back into HTTP. The answers API Gateway itself gives (no route, no credentials, denied,
function failed, payload too large) use the template's ``GatewayResponses``.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import re
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from nexus.local.lambdas import InvokeResult, LocalLambda
from nexus.local.model import Api, Platform, Route

log = logging.getLogger("nexus.local.apigw")

MAX_PAYLOAD_BYTES = 10 * 1024 * 1024

_DEFAULT_STATUS = {
    "UNAUTHORIZED": 401,
    "ACCESS_DENIED": 403,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "AUTHORIZER_FAILURE": 500,
    "AUTHORIZER_CONFIGURATION_ERROR": 500,
    "BAD_REQUEST_BODY": 400,
    "REQUEST_TOO_LARGE": 413,
    "INTEGRATION_FAILURE": 504,
    "INTEGRATION_TIMEOUT": 504,
    "API_CONFIGURATION_ERROR": 500,
}
_DEFAULT_MESSAGE = {
    "UNAUTHORIZED": "Unauthorized",
    "ACCESS_DENIED": "User is not authorized to access this resource",
    "MISSING_AUTHENTICATION_TOKEN": "Missing Authentication Token",
    "AUTHORIZER_FAILURE": "Authorizer failure",
    "REQUEST_TOO_LARGE": "Request Too Large",
    "INTEGRATION_FAILURE": "Internal server error",
    "INTEGRATION_TIMEOUT": "Endpoint request timed out",
    "API_CONFIGURATION_ERROR": "Internal server error",
}


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


@dataclass(frozen=True)
class _CompiledRoute:
    route: Route
    pattern: re.Pattern[str]
    specificity: tuple[int, int]


def _compile(route: Route) -> _CompiledRoute:
    parts = []
    literal = 0
    for segment in route.path.strip("/").split("/"):
        if segment.startswith("{") and segment.endswith("+}"):
            parts.append(f"(?P<{segment[1:-2]}>.+)")
        elif segment.startswith("{") and segment.endswith("}"):
            parts.append(f"(?P<{segment[1:-1]}>[^/]+)")
        else:
            parts.append(re.escape(segment))
            literal += 1
    pattern = re.compile("^/" + "/".join(parts) + "$") if route.path != "/" else re.compile("^/$")
    return _CompiledRoute(route, pattern, (literal, -route.path.count("+")))


class LocalApiGateway:
    def __init__(self, platform: Platform, lambdas: LocalLambda, region: str, account: str) -> None:
        self.platform = platform
        self.lambdas = lambdas
        self.region = region
        self.account = account
        self.routes = sorted((_compile(r) for r in platform.routes), key=lambda c: c.specificity, reverse=True)
        self._auth_cache: dict[tuple[str, tuple[str, ...]], tuple[float, dict[str, Any]]] = {}
        self._cache_lock = threading.Lock()

    # -- request handling ------------------------------------------------------------------

    def handle(
        self, method: str, raw_path: str, headers: list[tuple[str, str]], body: bytes, source_ip: str
    ) -> HttpResponse:
        request_id = str(uuid.uuid4())
        split = urlsplit(raw_path)
        path = unquote(split.path) or "/"
        api = next(iter(self.platform.apis.values()), None)
        if api is None:
            return HttpResponse(404, [], b"")
        if len(body) > MAX_PAYLOAD_BYTES:
            return self._gateway(api, "REQUEST_TOO_LARGE", request_id)
        match = self._match(method, path)
        if match is None:
            return self._gateway(api, "MISSING_AUTHENTICATION_TOKEN", request_id)
        compiled, path_params = match
        route = compiled.route
        api = self.platform.apis[route.api]
        event = self._proxy_event(
            api, route, method, path, split.query, headers, body, path_params, source_ip, request_id
        )
        if route.authorizer is not None:
            denied = self._authorize(api, route, event, request_id)
            if isinstance(denied, HttpResponse):
                return denied
            event["requestContext"]["authorizer"] = denied
        result = self.lambdas.invoke(route.function, event)
        return self._to_http(api, result, request_id)

    def _match(self, method: str, path: str) -> tuple[_CompiledRoute, dict[str, str]] | None:
        for compiled in self.routes:
            if compiled.route.method not in (method, "ANY"):
                continue
            found = compiled.pattern.match(path)
            if found:
                return compiled, found.groupdict()
        return None

    def _method_arn(self, api: Api, method: str, path: str) -> str:
        return (
            f"arn:aws:execute-api:{self.region}:{self.account}:local-{api.logical_id.lower()}"
            f"/{api.stage}/{method}{path}"
        )

    def _proxy_event(
        self,
        api: Api,
        route: Route,
        method: str,
        path: str,
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        path_params: dict[str, str],
        source_ip: str,
        request_id: str,
    ) -> dict[str, Any]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in headers:
            single[name] = value
            multi.setdefault(name, []).append(value)
        q_single: dict[str, str] = {}
        q_multi: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            q_single[name] = value
            q_multi.setdefault(name, []).append(value)
        try:
            text: str | None = body.decode("utf-8") if body else None
            encoded = False
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
        now = datetime.now(UTC)
        return {
            "resource": route.path,
            "path": path,
            "httpMethod": method,
            "headers": single or None,
            "multiValueHeaders": multi or None,
            "queryStringParameters": q_single or None,
            "multiValueQueryStringParameters": q_multi or None,
            "pathParameters": path_params or None,
            "stageVariables": None,
            "requestContext": {
                "resourcePath": route.path,
                "httpMethod": method,
                "path": f"/{api.stage}{path}",
                "stage": api.stage,
                "requestId": request_id,
                "extendedRequestId": request_id,
                "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "requestTimeEpoch": int(now.timestamp() * 1000),
                "accountId": self.account,
                "apiId": f"local-{api.logical_id.lower()}",
                "protocol": "HTTP/1.1",
                "identity": {"sourceIp": source_ip, "userAgent": single.get("User-Agent", "")},
                "domainName": "127.0.0.1",
            },
            "body": text,
            "isBase64Encoded": encoded,
        }

    # -- authorizers -----------------------------------------------------------------------

    def _authorize(
        self, api: Api, route: Route, event: dict[str, Any], request_id: str
    ) -> HttpResponse | dict[str, Any]:
        authorizer = api.authorizers[route.authorizer or ""]
        lowered = {k.lower(): v for k, v in (event["headers"] or {}).items()}
        identity = []
        for header in authorizer.identity_headers:
            value = lowered.get(header.lower())
            if not value:
                return self._gateway(api, "UNAUTHORIZED", request_id)
            identity.append(value)
        method_arn = self._method_arn(api, event["httpMethod"], event["path"])
        cache_key = (authorizer.name, tuple(identity))
        policy = self._cached(cache_key, authorizer.reauthorize_every)
        if policy is None:
            auth_event = {
                "type": "REQUEST",
                "methodArn": method_arn,
                **{
                    k: event[k]
                    for k in (
                        "resource",
                        "path",
                        "httpMethod",
                        "headers",
                        "multiValueHeaders",
                        "queryStringParameters",
                        "multiValueQueryStringParameters",
                        "pathParameters",
                        "stageVariables",
                        "requestContext",
                    )
                },
            }
            if authorizer.payload_type == "TOKEN":
                auth_event = {"type": "TOKEN", "methodArn": method_arn, "authorizationToken": identity[0]}
            started = time.monotonic()
            result = self.lambdas.invoke(authorizer.function, auth_event)
            if not result.ok:
                if (result.error or {}).get("errorMessage") == "Unauthorized":
                    return self._gateway(api, "UNAUTHORIZED", request_id)
                log.warning("authorizer %s failed: %s", authorizer.name, (result.error or {}).get("errorMessage"))
                return self._gateway(api, "AUTHORIZER_FAILURE", request_id)
            policy = result.payload if isinstance(result.payload, dict) else {}
            policy = {**policy, "_latency": int((time.monotonic() - started) * 1000)}
            if authorizer.reauthorize_every > 0:
                with self._cache_lock:
                    self._auth_cache[cache_key] = (time.monotonic() + authorizer.reauthorize_every, policy)
        if not _allows(policy.get("policyDocument") or {}, method_arn):
            return self._gateway(api, "ACCESS_DENIED", request_id)
        context = {k: v for k, v in (policy.get("context") or {}).items() if isinstance(v, str | int | float | bool)}
        return {**context, "principalId": policy.get("principalId"), "integrationLatency": policy["_latency"]}

    def _cached(self, key: tuple[str, tuple[str, ...]], ttl: int) -> dict[str, Any] | None:
        if ttl <= 0:
            return None
        with self._cache_lock:
            entry = self._auth_cache.get(key)
            if entry and entry[0] > time.monotonic():
                return entry[1]
            self._auth_cache.pop(key, None)
        return None

    # -- responses -------------------------------------------------------------------------

    def _to_http(self, api: Api, result: InvokeResult, request_id: str) -> HttpResponse:
        if not result.ok:
            error = result.error or {}
            log.error("integration error: %s: %s", error.get("errorType"), error.get("errorMessage"))
            kind = "INTEGRATION_TIMEOUT" if error.get("errorType") == "Sandbox.Timedout" else "INTEGRATION_FAILURE"
            response = self._gateway(api, kind, request_id)
            status = 504 if kind == "INTEGRATION_TIMEOUT" else 502
            return HttpResponse(status, response.headers, response.body)
        payload = result.payload
        if not isinstance(payload, dict) or not isinstance(payload.get("statusCode"), int):
            log.error("malformed Lambda proxy response")
            response = self._gateway(api, "INTEGRATION_FAILURE", request_id)
            return HttpResponse(502, response.headers, response.body)
        headers: list[tuple[str, str]] = []
        for name, values in (payload.get("multiValueHeaders") or {}).items():
            headers.extend((name, str(v)) for v in values)
        seen = {n.lower() for n, _ in headers}
        headers.extend((n, str(v)) for n, v in (payload.get("headers") or {}).items() if n.lower() not in seen)
        raw = payload.get("body") or ""
        body = base64.b64decode(raw) if payload.get("isBase64Encoded") else str(raw).encode("utf-8")
        headers.append(("x-amzn-RequestId", request_id))
        return HttpResponse(int(payload["statusCode"]), headers, body)

    def _gateway(self, api: Api, kind: str, request_id: str) -> HttpResponse:
        status = _DEFAULT_STATUS.get(kind, 500)
        family = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        spec = api.gateway_responses.get(kind) or api.gateway_responses.get(family)
        message = _DEFAULT_MESSAGE.get(kind, HTTPStatus(status).phrase)
        body = json.dumps({"message": message})
        headers = [("Content-Type", "application/json")]
        if spec is not None:
            if kind in api.gateway_responses and spec.status:
                status = spec.status
            if spec.body is not None:
                body = (
                    spec.body.replace("$context.error.messageString", json.dumps(message))
                    .replace("$context.error.message", message)
                    .replace("$context.requestId", request_id)
                )
            headers.extend(spec.headers.items())
        headers.append(("x-amzn-ErrorType", kind))
        headers.append(("x-amzn-RequestId", request_id))
        return HttpResponse(status, headers, body.encode("utf-8"))


def _allows(document: dict[str, Any], method_arn: str) -> bool:
    statements = document.get("Statement") or []
    if isinstance(statements, dict):
        statements = [statements]
    allowed = False
    for statement in statements:
        resources = statement.get("Resource") or []
        resources = [resources] if isinstance(resources, str) else resources
        actions = statement.get("Action") or []
        actions = [actions] if isinstance(actions, str) else actions
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) for a in actions):
            continue
        if any(fnmatch.fnmatchcase(method_arn, r) for r in resources):
            if statement.get("Effect") == "Deny":
                return False
            if statement.get("Effect") == "Allow":
                allowed = True
    return allowed


# -- HTTP server ----------------------------------------------------------------------------


def _snake(phrase: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", phrase.lower()).strip("_")


def make_server(gateway: LocalApiGateway, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "NexusTrade-local"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_PAYLOAD_BYTES:
                body = b""
                self.close_connection = True
                response = gateway.handle(
                    self.command,
                    self.path,
                    list(self.headers.items()),
                    b"x" * (MAX_PAYLOAD_BYTES + 1),
                    self.client_address[0],
                )
            else:
                body = self.rfile.read(length) if length else b""
                response = gateway.handle(
                    self.command, self.path, list(self.headers.items()), body, self.client_address[0]
                )
            self.send_response(response.status)
            for name, value in response.headers:
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def __getattr__(self, name: str) -> Any:
            # http.server answers an HTML 501 for a method without a do_<METHOD>; API Gateway
            # answers every method itself: TRACE, CONNECT or any made-up verb that no route
            # declares gets the template's answer for an unknown route, in the error body.
            if name.startswith("do_"):
                return self._serve
            raise AttributeError(name)

        def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
            # What http.server refuses before a request reaches the gateway (a malformed request
            # line, an over-long URI or header): the NexusTrade error body, not its HTML page.
            status = HTTPStatus(code)
            body = json.dumps(
                {"error": {"code": _snake(status.phrase), "message": message or status.phrase}}
            ).encode("utf-8")
            self.log_error("code %d, message %s", code, message)
            self.send_response(code, message)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.close_connection = True
            if self.command != "HEAD" and code >= 200 and code not in (204, 304):
                self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
