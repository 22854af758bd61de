"""HTTP header parsing for the local platform's processes, without the ``email`` package.

Every request to the embedded AWS parses two header blocks with ``http.client.parse_headers``:
the request's, in the server (``http.server``), and the answer's, in the SDK (``http.client``
under urllib3). The standard library parses them with ``email.parser``'s feed parser, a general
MIME parser: about 4 % of an SDK call's CPU, and as much again in the server, on every one of
the 15-20 requests an order costs locally.

``parse_headers`` builds the same ``HTTPMessage`` directly for the header lines HTTP servers and
the SDK send (``Name: value``). Anything else (a continuation line, a line that is not a header,
a carriage return inside a line, a multipart or message Content-Type, which the feed parser
treats as MIME) goes to the standard library's parser, so the result is the
standard library's in every case. ``install()`` puts it in place for this process (``nexus up``, each
Lambda worker, the embedded AWS); AWS itself is never touched by it.
"""

from __future__ import annotations

import http.client
import io
import re
from typing import Any, BinaryIO

# A header line as email's feed parser recognises it (``feedparser.headerRE``), minus the
# continuation, ``From `` and empty-name forms that ``parse_headers`` leaves to it.
_HEADER_LINE = re.compile(rb"[\x21-\x39\x3b-\x7e]+:")
_END = (b"\r\n", b"\n", b"")

_standard_parse_headers = http.client.parse_headers


def parse_headers(fp: BinaryIO, _class: type[http.client.HTTPMessage] = http.client.HTTPMessage) -> Any:
    """``http.client.parse_headers``: the same limits (``_read_headers``), the same message."""
    lines = http.client._read_headers(fp)  # type: ignore[attr-defined]
    return message_from(header_pairs(lines), lines, _class)


def message_from(
    pairs: list[tuple[str, str]] | None,
    lines: list[bytes],
    _class: type[http.client.HTTPMessage] = http.client.HTTPMessage,
) -> Any:
    """The message ``parse_headers`` makes of these header lines, given their ``header_pairs``
    (None: the standard library's parser reads the lines)."""
    if pairs is None:
        return _standard_parse_headers(io.BytesIO(b"".join(lines)), _class)
    message = _class()
    for name, value in pairs:
        message.set_raw(name, value)
    message.set_payload("")  # what the feed parser leaves after a block of headers alone
    return message


def header_pairs(lines: list[bytes]) -> list[tuple[str, str]] | None:
    """The (name, value) pairs of these header lines, as email's feed parser reads them, or None
    for a block it reads in another way (see the module docstring)."""
    pairs = []
    for line in lines:
        if line in _END:
            break
        # the feed parser also ends a line at a lone carriage return
        if not _HEADER_LINE.match(line) or b"\r" in _without_line_end(line):
            return None
        name, _, value = line.decode("iso-8859-1").partition(":")
        # email's compat32 policy: the name as written, the value without leading blanks or the
        # line's end
        value = value.lstrip(" \t").rstrip("\r\n")
        if name.lower() == "content-type" and value.lower().startswith(("multipart/", "message/")):
            return None  # read as MIME
        pairs.append((name, value))
    return pairs


def _without_line_end(line: bytes) -> bytes:
    if line.endswith(b"\r\n"):
        return line[:-2]
    return line[:-1] if line.endswith((b"\n", b"\r")) else line


def install() -> None:
    """Parse HTTP headers with ``parse_headers`` in this process (idempotent).
    ``http.server`` and ``http.client`` both look the function up in ``http.client`` per call."""
    http.client.parse_headers = parse_headers  # type: ignore[assignment]
