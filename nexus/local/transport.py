"""Requests to the embedded AWS over a lean HTTP/1.1 connection.

The SDK sends every request through urllib3 and ``http.client``: a connection pool, a request
built header by header, a response object with its own parser and decoders. For a request to the
embedded AWS (``nexus.local.aws_server``, on the loopback interface) that is about a third of an SDK
call's CPU, measured at 250 µs of 660-780 µs per ``GetItem`` or ``PutItem``, on every one of the
15-20 requests an order costs locally.

``install(endpoint)`` makes this process's SDK send a request to ``endpoint`` (and only there)
over a kept-alive socket of its own: the request written in one piece, the answer read by its
status line, headers and ``Content-Length`` (or chunks, or to the connection's end). The wire is
the same HTTP/1.1; the SDK's retries, timeouts and error types are too:

* a refused connection is ``EndpointConnectionError``, a connect that times out
  ``ConnectTimeoutError``, an answer that does not come in time ``ReadTimeoutError``, and a
  connection closed before a whole answer ``ConnectionClosedError``: the SDK retries them as it
  retries urllib3's;
* a kept connection the server has closed is noticed before it is used (as urllib3 does), and
  a new one is made;
* the connect and read timeouts are the client's (``Config``), and a request's own read timeout
  (the SDK's per-request override) wins;
* at most the client's ``max_pool_connections`` are kept idle per client.

More costs of an SDK call are cut for the same requests, with the same outcome:

* its endpoint is resolved once per client and operation, not on every call: for an endpoint
  given to the client, the ruleset of every service the platform uses resolves to that endpoint
  alone (no header, no property), whatever the call's parameters, but gathering those parameters
  (hooks, context parameters, a JMESPath search for a batch's tables) cost 46 µs a call, 6 % of
  a Lambda worker's CPU. A resolution that gives anything else is made again on every call;
* a DynamoDB resource's call copies its parameters (boto3 serializes the copy in place, so the
  caller's stay as they were) as dictionaries and lists, sharing the values they hold, instead of
  ``copy.deepcopy`` of every value: boto3 only ever assigns into the copy's dictionaries and
  lists (3 % of a worker's CPU). This holds for every DynamoDB resource of a process that sends
  to the embedded AWS.

  Together: a table resource's ``put_item`` and ``get_item`` as a Lambda worker makes them
  (scope-only signing, no parameter validation), answered before they are sent, take 181-189 µs
  of CPU instead of 217-219 µs each.
* a JSON-protocol request's parameters are written out by functions made once per shape of the
  service model (``_converter``): botocore looks up a method by name for every value, so an
  audit record (a list of maps of lists) cost a walk of the model per attribute. The body is
  botocore's, byte for byte. An audit record's ``put_item`` and a ``get_item``, as above: 235-240
  -> 214-216 µs each. This holds for every JSON-protocol client of a process that sends to the
  embedded AWS;
* a request's URL is split once per URL (3 % of a Lambda worker's CPU went to ``urlsplit``).

Requests anywhere else (LocalStack through ``AWS_ENDPOINT_URL``, AWS itself) and the few this
path does not cover (a streamed answer, a streamed or chunked body) go through urllib3 as ever.
``nexus up`` calls ``install`` for itself and its Lambda workers with the embedded endpoint
(``NEXUS_EMBEDDED_AWS``), and only when it runs the embedded AWS.
"""

from __future__ import annotations

import functools
import os
import select
import socket
import threading
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from typing import Any, BinaryIO, Final
from urllib.parse import urlsplit

import boto3.dynamodb.transform
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.client import BaseClient
from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
)
from botocore.httpsession import URLLib3Session
from botocore.serialize import JSONSerializer
from urllib3.util.timeout import Timeout

from nexus.local.signing import request_prefixes

MAX_LINE: Final = 65536  # a status or header line, as http.client bounds it
MAX_HEADERS: Final = 100  # header lines per answer, as http.client bounds them
_NO_BODY: Final = frozenset({204, 304})

_urllib3_send = URLLib3Session.send
_resolve_endpoint_ruleset = BaseClient._resolve_endpoint_ruleset
_endpoints: tuple[str, ...] = ()
_pools_lock = threading.Lock()


class ProtocolError(Exception):
    """An answer that is not HTTP/1.x as the embedded AWS writes it."""


class _Body:
    """An answer's body, read whole: the SDK reads a raw response that is not streamed (the only
    kind sent this way) through ``stream()`` alone."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def stream(self, **_: Any) -> Any:
        yield self._data


class _Connection:
    def __init__(self, host: str, port: int, connect_timeout: float | None) -> None:
        self.sock = socket.create_connection((host, port), connect_timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader: BinaryIO = self.sock.makefile("rb")
        self.pid = os.getpid()

    def dropped(self) -> bool:
        """Closed by the server while idle (or holding bytes no request asked for)."""
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(readable)

    def close(self) -> None:
        for part in (self.reader, self.sock):
            try:
                part.close()
            except OSError:
                pass


class LeanPool:
    """The kept-alive connections of one SDK client's HTTP session to the embedded AWS."""

    def __init__(self, session: URLLib3Session) -> None:
        self.session = session
        self.idle: deque[_Connection] = deque()
        self.lock = threading.Lock()
        self.made = 0  # connections opened, for tests and diagnostics

    def send(self, request: AWSPreparedRequest) -> AWSResponse:
        host, port, netloc, path, query = _split(request.url)
        connect_timeout, read_timeout = self._timeouts(request)
        data = _request_bytes(request, netloc, path, query)
        connection = self._take()
        try:
            if connection is None:
                connection = _Connection(host, port, connect_timeout)
                with self.lock:
                    self.made += 1
            connection.sock.settimeout(read_timeout)
            connection.sock.sendall(data)
            status, headers, body, keep = _read_answer(connection.reader, request.method)
        except ConnectionRefusedError as exc:
            raise EndpointConnectionError(endpoint_url=request.url, error=exc) from exc
        except TimeoutError as exc:
            if connection is None:
                raise ConnectTimeoutError(endpoint_url=request.url, error=exc) from exc
            connection.close()
            raise ReadTimeoutError(endpoint_url=request.url, error=exc) from exc
        except (ConnectionError, ProtocolError) as exc:  # reset, broken pipe, closed, garbled
            if connection is not None:
                connection.close()
            raise ConnectionClosedError(endpoint_url=request.url, request=request, error=exc) from exc
        except OSError as exc:
            if connection is None:
                raise EndpointConnectionError(endpoint_url=request.url, error=exc) from exc
            connection.close()
            raise HTTPClientError(error=exc) from exc
        if keep:
            self._give_back(connection)
        else:
            connection.close()
        return AWSResponse(request.url, status, headers, _Body(body))

    def _timeouts(self, request: AWSPreparedRequest) -> tuple[float | None, float | None]:
        timeout = self.session._get_request_timeout(request) or self.session._timeout
        if isinstance(timeout, Timeout):
            return _seconds(timeout.connect_timeout), _seconds(timeout.read_timeout)
        return _seconds(timeout), _seconds(timeout)

    def _take(self) -> _Connection | None:
        while True:
            with self.lock:
                if not self.idle:
                    return None
                connection = self.idle.pop()
            if connection.pid == os.getpid() and not connection.dropped():
                return connection
            connection.close()

    def _give_back(self, connection: _Connection) -> None:
        with self.lock:
            if len(self.idle) < max(1, int(self.session._max_pool_connections)):
                self.idle.append(connection)
                return
        connection.close()


@functools.lru_cache(maxsize=256)
def _split(url: str) -> tuple[str, int, str, str, str]:
    """A request URL's host, port, netloc, path and query (a client sends to a handful of URLs:
    splitting each once saves 3 % of a Lambda worker's CPU)."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80, parts.netloc, parts.path or "/", parts.query


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _text(value: Any) -> str:
    text = value.decode("iso-8859-1") if isinstance(value, (bytes, bytearray)) else str(value)
    if "\r" in text or "\n" in text:  # no header may start another (http.client refuses these too)
        raise ValueError(f"invalid header text {text!r}")
    return text


def _name(value: Any) -> str:
    name = _text(value)
    if not name or ":" in name or name != name.strip():
        raise ValueError(f"invalid header name {name!r}")
    return name


def _request_bytes(request: AWSPreparedRequest, netloc: str, path: str, query: str) -> bytes:
    body = bytes(request.body or b"")
    target = f"{path}?{query}" if query else path
    lines = [f"{_text(request.method)} {_text(target)} HTTP/1.1"]
    names = set()
    for name, value in request.headers.items():
        lines.append(f"{_name(name)}: {_text(value)}")
        names.add(str(name).lower())
    if "host" not in names:
        lines.append(f"Host: {_text(netloc)}")
    if "content-length" not in names and (body or request.method in ("POST", "PUT", "PATCH")):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("\r\n")
    return "\r\n".join(lines).encode("iso-8859-1") + body


def _line(reader: BinaryIO) -> bytes:
    line = reader.readline(MAX_LINE + 1)
    if len(line) > MAX_LINE:
        raise ProtocolError("line too long")
    return line


def _read_answer(reader: BinaryIO, method: str) -> tuple[int, dict[str, str], bytes, bool]:
    """An answer's status, headers (repeated names joined with ", ", as urllib3 does), body, and
    whether the connection may carry another request. Informational answers (100 Continue) are
    skipped."""
    while True:
        status_line = _line(reader)
        if not status_line:
            raise ConnectionResetError("closed before an answer")
        version, _, rest = status_line.decode("iso-8859-1").partition(" ")
        code_text = rest[:3]
        if not version.startswith("HTTP/1.") or not code_text.isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
        status = int(code_text)
        headers: dict[str, tuple[str, str]] = {}
        for _ in range(MAX_HEADERS + 1):
            line = _line(reader)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise ConnectionResetError("closed within the headers")
            name, colon, value = line.decode("iso-8859-1").partition(":")
            if not colon or not name or name != name.strip():
                raise ProtocolError(f"not a header line: {line[:80]!r}")
            value = value.strip(" \t\r\n")
            key = name.lower()
            headers[key] = (headers[key][0], f"{headers[key][1]}, {value}") if key in headers else (name, value)
        else:
            raise ProtocolError("too many headers")
        if status >= 200:
            break
    keep = version == "HTTP/1.1" and "close" not in headers.get("connection", ("", ""))[1].lower()
    if method == "HEAD" or status in _NO_BODY:
        body = b""
    elif "chunked" in headers.get("transfer-encoding", ("", ""))[1].lower():
        body = _chunks(reader)
    elif "content-length" in headers:
        length_text = headers["content-length"][1]
        if not length_text.isdigit():
            raise ProtocolError(f"bad Content-Length {length_text!r}")
        length = int(length_text)
        body = reader.read(length)
        if len(body) < length:
            raise ConnectionResetError(f"closed after {len(body)} of {length} bytes")
    else:  # the body ends with the connection
        body, keep = reader.read(), False
    return status, dict(headers.values()), body, keep


def _chunks(reader: BinaryIO) -> bytes:
    parts: list[bytes] = []
    while True:
        size_text = _line(reader).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while _line(reader) not in (b"\r\n", b"\n", b""):  # trailers
                pass
            return b"".join(parts)
        chunk = reader.read(size)
        if len(chunk) < size:
            raise ConnectionResetError("closed within a chunk")
        parts.append(chunk)
        _line(reader)  # the chunk's line end


def _lean(request: AWSPreparedRequest) -> bool:
    """Whether this request goes the lean way: to the embedded AWS, its whole answer read at once,
    its body in memory (not a stream, not chunked)."""
    return (
        str(request.url).startswith(_endpoints)
        and not request.stream_output
        and isinstance(request.body, (bytes, bytearray, type(None)))
        and "chunked" not in str(request.headers.get("Transfer-Encoding", "")).lower()
    )


def pool_of(session: URLLib3Session) -> LeanPool:
    """The lean connections of an SDK client's HTTP session (made on first use)."""
    pool = session.__dict__.get("_nexus_lean_pool")
    if pool is None:
        with _pools_lock:
            pool = session.__dict__.setdefault("_nexus_lean_pool", LeanPool(session))
    return pool  # type: ignore[no-any-return]


def _send(self: URLLib3Session, request: AWSPreparedRequest) -> AWSResponse:
    """``URLLib3Session.send``; a request to the embedded AWS goes over a lean connection."""
    if not _lean(request):
        return _urllib3_send(self, request)
    try:
        return pool_of(self).send(request)
    except ValueError as exc:  # a header that cannot be written
        raise HTTPClientError(error=exc) from exc


def _resolve_endpoint(
    self: BaseClient, operation_model: Any, params: Any, request_context: Any, ignore_signing_region: bool = False
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """``BaseClient._resolve_endpoint_ruleset``; for a client of the embedded AWS, once per
    operation while it resolves to the client's endpoint alone (see the module docstring)."""
    endpoint = self.meta.endpoint_url
    if not endpoint or not (endpoint.rstrip("/") + "/").startswith(_endpoints):
        return _resolve_endpoint_ruleset(self, operation_model, params, request_context, ignore_signing_region)  # type: ignore[no-any-return]
    plain: set[str] = self.__dict__.setdefault("_nexus_plain_endpoint", set())
    if operation_model.name in plain:
        return endpoint, {}, {}
    url, headers, properties = _resolve_endpoint_ruleset(
        self, operation_model, params, request_context, ignore_signing_region
    )
    if url == endpoint and not headers and not properties:
        plain.add(operation_model.name)
    return url, headers, properties


def copy_params(params: Any, **_: Any) -> Any:
    """A DynamoDB resource's parameters, copied as dictionaries and lists that share the values
    they hold (see the module docstring): boto3's ``copy_dynamodb_params`` less the deep copy."""
    if type(params) is dict:
        return {key: copy_params(value) for key, value in params.items()}
    if type(params) is list:
        return [copy_params(value) for value in params]
    return params


_Converter = Callable[[Any], Any] | None  # None: the value as it is
_botocore_json_serialize = JSONSerializer._serialize
_SERIALIZE_TYPES: Final = frozenset(name for name in dir(JSONSerializer) if name.startswith("_serialize_type_"))


def _converter(serializer: JSONSerializer, shape: Any, made: dict[Any, _Converter]) -> _Converter:
    """A function giving what ``JSONSerializer._serialize`` writes for a value of ``shape`` (None
    for the value itself), made once per shape, its traits and its model (``made``). A shape
    whose type this does not know is serialized by botocore itself."""
    traits = repr(sorted(shape.serialization.items()))
    key = (getattr(shape, "_shape_resolver", None), shape.name, shape.type_name, traits)
    if key in made:
        return made[key]
    kind = shape.type_name
    conv: _Converter
    if kind == "structure" and not shape.is_document_type:
        fields: dict[str, tuple[str, _Converter]] = {}

        def structure(value: Any) -> Any:
            out = {}
            for name, member in value.items():
                written, member_conv = fields[name]  # KeyError for a name not in the shape, as botocore
                out[written] = member if member_conv is None else member_conv(member)
            return out

        made[key] = conv = structure  # before its members: a shape may hold itself
        for name, member_shape in shape.members.items():
            fields[name] = (member_shape.serialization.get("name", name), _converter(serializer, member_shape, made))
        return conv
    if kind == "structure":  # a document
        conv = None
    elif kind == "map":
        value_conv = _converter(serializer, shape.value, made)
        if value_conv is None:
            conv = lambda value: dict(value.items())  # noqa: E731
        else:
            conv = lambda value: {k: value_conv(v) for k, v in value.items()}  # noqa: E731
    elif kind == "list":
        item_conv = _converter(serializer, shape.member, made)
        conv = list if item_conv is None else (lambda value: [item_conv(v) for v in value])
    elif kind == "blob":
        conv = serializer._get_base64
    elif kind == "timestamp":
        form = shape.serialization.get("timestampFormat")
        conv = lambda value: serializer._convert_timestamp_to_str(value, form)  # noqa: E731
    elif kind in ("float", "double"):
        conv = lambda value: serializer._handle_float(float(value) if isinstance(value, Decimal) else value)  # noqa: E731
    elif f"_serialize_type_{kind}" in _SERIALIZE_TYPES:  # a type botocore serializes in a way not known here
        conv = lambda value: _by_botocore(serializer, value, shape)  # noqa: E731
    else:  # _default_serialize: the value itself
        conv = None
    made[key] = conv
    return conv


def _by_botocore(serializer: JSONSerializer, value: Any, shape: Any) -> Any:
    wrapper: dict[str, Any] = {}
    _botocore_json_serialize(serializer, wrapper, value, shape, "__current__")
    return wrapper["__current__"]


def _json_serialize(self: JSONSerializer, serialized: Any, value: Any, shape: Any, key: Any = None) -> None:
    """``JSONSerializer._serialize``; a request's parameters (the top-level call) are converted by
    functions made once per shape (``_converter``) instead of looking up a method per value."""
    if key is not None or type(self) is not JSONSerializer or shape.type_name != "structure":
        _botocore_json_serialize(self, serialized, value, shape, key)
        return
    made = self.__dict__.setdefault("_nexus_converters", {})
    conv = _converter(self, shape, made)
    serialized.update(value if conv is None else conv(value))


def install(endpoint: str | None = None) -> bool:
    """Send this process's SDK requests to ``endpoint`` (default: ``NEXUS_EMBEDDED_AWS``) over lean
    connections; False when there is none (nothing changes). Only a plain-HTTP endpoint qualifies."""
    global _endpoints
    prefixes = request_prefixes(endpoint)
    if not prefixes or not prefixes[0].startswith("http://"):
        return False
    _endpoints = tuple(dict.fromkeys((*_endpoints, *prefixes)))
    URLLib3Session.send = _send
    BaseClient._resolve_endpoint_ruleset = _resolve_endpoint
    boto3.dynamodb.transform.copy_dynamodb_params = copy_params  # read when a resource is made
    JSONSerializer._serialize = _json_serialize
    return True
