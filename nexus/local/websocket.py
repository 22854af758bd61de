"""Local API Gateway WebSocket API (v2, ``WEBSOCKET``) and its Management API (``@connections``).

The WebSocket server (the ``websockets`` library, asyncio, in one thread) accepts a connection
only after the ``$connect`` route's REQUEST authorizer allowed it (identity sources checked
first: a missing one is a 401, an ``Unauthorized`` from the function a 401, a ``Deny`` policy a
403) and the ``$connect`` function answered 2xx. Each message is routed by the API's route
selection expression (``$request.body.action``) to its route's function, else to ``$default``;
closing invokes ``$disconnect``. Every function gets the API Gateway v2 WebSocket event
(``requestContext.connectionId``, ``routeKey``, ``eventType``, ``authorizer`` = the authorizer's
context), invoked through the local Lambda worker pools.

The Management API is an HTTP server: ``POST /@connections/{id}`` (body = the frame),
``GET`` (connection info) and ``DELETE`` (close), with or without a leading ``/{stage}``, and
410 ``GoneException`` for a connection that is not open. A POST never blocks: each connection
has a bounded send queue drained by its own writer; when a client reads too slowly and its queue
is full, the connection is closed with 1008 (policy violation) and that POST answers 410, so one
slow client never slows the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import threading
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from nexus.local.apigw import _allows
from nexus.local.lambdas import LocalLambda
from nexus.local.model import WebSocketApi

log = logging.getLogger("nexus.local.websocket")

MAX_FRAME_BYTES = 128 * 1024  # API Gateway's WebSocket frame limit (PostToConnection: 128 KB)
DEFAULT_SEND_QUEUE = 256


@dataclass
class _Client:
    connection_id: str
    websocket: ServerConnection | None
    context: dict[str, Any]
    source_ip: str
    user_agent: str
    connected_at: datetime
    queue: asyncio.Queue[bytes]
    last_active: datetime = field(default_factory=lambda: datetime.now(UTC))
    open: bool = True
    writer: asyncio.Task[None] | None = None


class LocalWebSocketGateway:
    """One WebSocket API of the template, served on ``host:port``; its Management API on
    ``host:management_port``."""

    def __init__(
        self,
        api: WebSocketApi,
        lambdas: LocalLambda,
        region: str,
        account: str,
        *,
        host: str = "127.0.0.1",
        port: int = 8001,
        management_port: int = 0,
        send_queue: int = DEFAULT_SEND_QUEUE,
    ) -> None:
        self.api = api
        self.lambdas = lambdas
        self.region = region
        self.account = account
        self.host = host
        self.port = port
        self.management_port = management_port
        self.send_queue = send_queue
        self.clients: dict[str, _Client] = {}
        self._pending: dict[int, _Client] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: Server | None = None
        self._http: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._error: BaseException | None = None

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def management_url(self) -> str:
        return f"http://{self.host}:{self.management_port}"

    def start(self) -> None:
        self._http = _management_server(self, self.host, self.management_port)
        self.management_port = int(self._http.server_address[1])
        http_thread = threading.Thread(target=self._http.serve_forever, name="ws-management", daemon=True)
        http_thread.start()
        loop_thread = threading.Thread(target=self._run, name="websocket", daemon=True)
        loop_thread.start()
        self._threads = [http_thread, loop_thread]
        if not self._ready.wait(15) or self._error is not None:
            self.stop()
            raise RuntimeError(f"WebSocket server did not start: {self._error}")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # noqa: BLE001 - the server thread's boundary: reported to start()
            self._error = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with serve(
            self._handler,
            self.host,
            self.port,
            process_request=self._process_request,
            max_size=MAX_FRAME_BYTES,
            close_timeout=1,
            compression=None,
        ) as server:
            self._server = server
            sockets = list(server.sockets)
            self.port = int(sockets[0].getsockname()[1])
            self._ready.set()
            await self._stopped.wait()
            server.close()
            await server.wait_closed()

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._loop is not None and self._stopped is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopped.set)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads = []

    # -- events ----------------------------------------------------------------------------

    def _request_context(self, client: _Client, route_key: str, event_type: str) -> dict[str, Any]:
        now = datetime.now(UTC)
        request_id = str(uuid.uuid4())
        context: dict[str, Any] = {
            "routeKey": route_key,
            "eventType": event_type,
            "connectionId": client.connection_id,
            "extendedRequestId": request_id,
            "requestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "connectedAt": int(client.connected_at.timestamp() * 1000),
            "messageDirection": "IN",
            "stage": self.api.stage,
            "domainName": f"{self.host}:{self.port}",
            "apiId": self.api.api_id,
            "identity": {"sourceIp": client.source_ip, "userAgent": client.user_agent},
        }
        if client.context:
            context["authorizer"] = dict(client.context)
        return context

    async def _invoke(self, function_id: str, event: dict[str, Any]) -> Any:
        return await asyncio.to_thread(self.lambdas.invoke, function_id, event)

    async def _process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        split = urlsplit(request.path)
        if split.path.rstrip("/") not in ("", f"/{self.api.stage}"):
            return connection.respond(404, "no such WebSocket API stage\n")
        headers = {name: value for name, value in request.headers.raw_items()}
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        remote = connection.remote_address
        client = _Client(
            connection_id=secrets.token_urlsafe(12),
            websocket=None,
            context={},
            source_ip=str(remote[0]) if remote else "127.0.0.1",
            user_agent=request.headers.get("User-Agent", ""),
            connected_at=datetime.now(UTC),
            queue=asyncio.Queue(maxsize=self.send_queue),
        )
        event: dict[str, Any] = {
            "headers": headers,
            "multiValueHeaders": {k: request.headers.get_all(k) for k in headers},
            "queryStringParameters": query or None,
            "multiValueQueryStringParameters": {k: [v] for k, v in query.items()} or None,
            "stageVariables": None,
            "isBase64Encoded": False,
        }
        connect_function = self.api.routes.get("$connect")
        if self.api.authorizer is not None:
            denied = await self._authorize(connection, client, event, headers, query)
            if denied is not None:
                return denied
        if connect_function is not None:
            result = await self._invoke(
                connect_function, {**event, "requestContext": self._request_context(client, "$connect", "CONNECT")}
            )
            status = result.payload.get("statusCode", 200) if result.ok and isinstance(result.payload, dict) else 500
            if not 200 <= int(status) < 300:
                return connection.respond(int(status), "connection refused\n")
        self._pending[id(connection)] = client
        return None

    async def _authorize(
        self,
        connection: ServerConnection,
        client: _Client,
        event: dict[str, Any],
        headers: dict[str, str],
        query: dict[str, str],
    ) -> Response | None:
        assert self.api.authorizer is not None
        lowered = {k.lower(): v for k, v in headers.items()}
        for source in self.api.authorizer.identity_sources:
            kind, _, name = source.removeprefix("route.request.").partition(".")
            value = lowered.get(name.lower()) if kind == "header" else query.get(name)
            if not value:
                return connection.respond(401, "Unauthorized\n")
        method_arn = f"arn:aws:execute-api:{self.region}:{self.account}:{self.api.api_id}/{self.api.stage}/$connect"
        auth_event = {
            "type": "REQUEST",
            "methodArn": method_arn,
            **event,
            "requestContext": self._request_context(client, "$connect", "CONNECT"),
        }
        result = await self._invoke(self.api.authorizer.function, auth_event)
        if not result.ok:
            if (result.error or {}).get("errorMessage") == "Unauthorized":
                return connection.respond(401, "Unauthorized\n")
            log.warning("WebSocket authorizer failed: %s", (result.error or {}).get("errorMessage"))
            return connection.respond(500, "Authorizer failure\n")
        policy = result.payload if isinstance(result.payload, dict) else {}
        if not _allows(policy.get("policyDocument") or {}, method_arn):
            return connection.respond(403, "Forbidden\n")
        client.context = {
            k: v for k, v in (policy.get("context") or {}).items() if isinstance(v, str | int | float | bool)
        }
        client.context["principalId"] = policy.get("principalId")
        return None

    async def _handler(self, websocket: ServerConnection) -> None:
        client = self._pending.pop(id(websocket))
        client.websocket = websocket
        self.clients[client.connection_id] = client
        client.writer = asyncio.create_task(self._write(client))
        code, reason = 1000, ""
        try:
            async for message in websocket:
                client.last_active = datetime.now(UTC)
                await self._route(client, message)
        except ConnectionClosed:
            pass
        finally:
            client.open = False
            if websocket.close_code is not None:
                code, reason = websocket.close_code, websocket.close_reason or ""
            client.writer.cancel()
            self.clients.pop(client.connection_id, None)
            disconnect = self.api.routes.get("$disconnect")
            if disconnect is not None:
                context = self._request_context(client, "$disconnect", "DISCONNECT")
                context.update(disconnectStatusCode=code, disconnectReason=reason)
                await self._invoke(disconnect, {"requestContext": context, "isBase64Encoded": False})

    def _route_key(self, message: str | bytes) -> str | None:
        field_name = self.api.route_selection.removeprefix("$request.body.")
        try:
            body = json.loads(message)
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get(field_name), str) and body[field_name] in self.api.routes:
            return str(body[field_name])
        return "$default" if "$default" in self.api.routes else None

    async def _route(self, client: _Client, message: str | bytes) -> None:
        route_key = self._route_key(message)
        if route_key is None:
            answer = {"message": "Forbidden", "connectionId": client.connection_id}
            await self._offer(client, json.dumps(answer).encode())
            return
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        event = {
            "requestContext": {
                **self._request_context(client, route_key, "MESSAGE"),
                "messageId": secrets.token_urlsafe(8),
            },
            "body": text,
            "isBase64Encoded": False,
        }
        result = await self._invoke(self.api.routes[route_key], event)
        if not result.ok:
            log.warning("WebSocket route %s failed: %s", route_key, (result.error or {}).get("errorMessage"))
            await self._offer(client, json.dumps({"message": "Internal server error"}).encode())

    # -- sending ---------------------------------------------------------------------------

    async def _write(self, client: _Client) -> None:
        assert client.websocket is not None
        try:
            while True:
                frame = await client.queue.get()
                try:
                    await client.websocket.send(frame.decode("utf-8"))
                except UnicodeDecodeError:
                    await client.websocket.send(frame)
        except (ConnectionClosed, asyncio.CancelledError):
            return

    async def _offer(self, client: _Client, frame: bytes) -> bool:
        """Queue a frame for a client without waiting; a full queue drops the client."""
        if not client.open:
            return False
        try:
            client.queue.put_nowait(frame)
        except asyncio.QueueFull:
            client.open = False
            log.warning("WebSocket %s: send queue full (%d): dropping the slow client", client.connection_id,
                        self.send_queue)  # fmt: skip
            asyncio.get_running_loop().create_task(self._drop(client, 1008, "slow consumer: send queue full"))
            return False
        return True

    async def _drop(self, client: _Client, code: int, reason: str) -> None:
        client.open = False
        self.clients.pop(client.connection_id, None)
        if client.writer is not None:
            client.writer.cancel()
        websocket = client.websocket
        if websocket is None:
            return
        try:
            await asyncio.wait_for(websocket.close(code, reason), timeout=2)
        except (TimeoutError, ConnectionClosed):
            pass
        if websocket.transport is not None and not websocket.transport.is_closing():
            websocket.transport.abort()

    # -- Management API (called from the HTTP server's threads) --------------------------------

    def _call(self, coroutine: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout=10)

    def post(self, connection_id: str, frame: bytes) -> bool:
        async def offer() -> bool:
            client = self.clients.get(connection_id)
            return client is not None and await self._offer(client, frame)

        return bool(self._call(offer()))

    def info(self, connection_id: str) -> dict[str, Any] | None:
        client = self.clients.get(connection_id)
        if client is None or not client.open:
            return None
        return {  # the wire names of GetConnection's answer
            "connectedAt": client.connected_at.isoformat().replace("+00:00", "Z"),
            "lastActiveAt": client.last_active.isoformat().replace("+00:00", "Z"),
            "identity": {"sourceIp": client.source_ip, "userAgent": client.user_agent},
        }

    def delete(self, connection_id: str) -> bool:
        async def close() -> bool:
            client = self.clients.get(connection_id)
            if client is None or not client.open:
                return False
            await self._drop(client, 1000, "")
            return True

        return bool(self._call(close()))


def _management_server(gateway: LocalWebSocketGateway, host: str, port: int) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "NexusTrade-local"

        def _connection_id(self) -> str | None:
            path = unquote(urlsplit(self.path).path)
            head, marker, connection_id = path.rpartition("/@connections/")
            if not marker or head.count("/") > 1 or not connection_id or "/" in connection_id:
                return None
            return connection_id

        def _answer(self, status: int, body: Any = None, error: str | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            if error:
                self.send_header("x-amzn-ErrorType", error)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _gone(self) -> None:
            self._answer(410, {"message": "the connection is not open"}, "GoneException")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            data = self.rfile.read(length) if length else b""
            connection_id = self._connection_id()
            if connection_id is None:
                self._answer(404, {"message": "no such route"}, "NotFoundException")
            elif length > MAX_FRAME_BYTES:
                self._answer(413, {"message": "payload too large"}, "PayloadTooLargeException")
            elif gateway.post(connection_id, data):
                self._answer(200)
            else:
                self._gone()

        def do_GET(self) -> None:
            connection_id = self._connection_id()
            info = gateway.info(connection_id) if connection_id else None
            if info is None:
                self._gone()
            else:
                self._answer(200, info)

        def do_DELETE(self) -> None:
            connection_id = self._connection_id()
            if connection_id and gateway.delete(connection_id):
                self._answer(204)
            else:
                self._gone()

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s - %s", self.address_string(), format % args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
