"""The local platform's header parser gives exactly the standard library's ``HTTPMessage``."""

from __future__ import annotations

import email.parser
import http.client
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nexus.local import http_headers


def _standard(block: bytes) -> http.client.HTTPMessage:
    return http_headers._standard_parse_headers(io.BytesIO(block))  # type: ignore[no-any-return]


def _fast(block: bytes) -> http.client.HTTPMessage:
    return http_headers.parse_headers(io.BytesIO(block))  # type: ignore[no-any-return]


def _payload(message: http.client.HTTPMessage) -> object:
    payload = message.get_payload()
    return [(part.items(), part.get_payload()) for part in payload] if isinstance(payload, list) else payload


def _same(block: bytes) -> None:
    fast, standard = _fast(block), _standard(block)
    assert type(fast) is type(standard)
    assert fast.items() == standard.items()
    assert _payload(fast) == _payload(standard)
    assert [type(d) for d in fast.defects] == [type(d) for d in standard.defects]


AWS_ANSWER = (
    b"Server: amazon.com\r\n"
    b"Date: Sat, 05 Dec 2026 02:00:00 GMT\r\n"
    b"Content-Type: application/x-amz-json-1.0\r\n"
    b"x-amzn-RequestId: ABCDEFGHIJ\r\n"
    b"x-amz-crc32: 2745614147\r\n"
    b"Content-Length: 2\r\n"
    b"Connection: keep-alive\r\n"
    b"\r\n"
    b"{}"
)


def test_an_answer_of_the_embedded_aws_is_parsed_without_the_email_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _standard(AWS_ANSWER)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the email parser was used")

    monkeypatch.setattr(email.parser, "Parser", refuse)
    fast = _fast(AWS_ANSWER)
    assert fast.items() == expected.items()
    assert fast["content-length"] == "2"
    assert fast.get_all("X-AMZN-REQUESTID") == ["ABCDEFGHIJ"]


def test_the_body_after_the_headers_is_left_unread() -> None:
    stream = io.BytesIO(AWS_ANSWER)
    http_headers.parse_headers(stream)
    assert stream.read() == b"{}"


@pytest.mark.parametrize(
    "block",
    [
        b"",
        b"\r\n",
        b"A: 1\r\nA: 2\r\n\r\n",  # repeated names keep both, in order
        b"A:1\r\nB:\t two  \r\n\r\n",  # no blank after the colon; tabs; trailing blanks kept
        b"A: 1\r\n  folded\r\n\r\n",  # a continuation line
        b"A: 1\r\nnot a header\r\nB: 2\r\n\r\n",  # a line that is not a header
        b"From someone\r\nA: 1\r\n\r\n",  # a mailbox line
        b":empty name\r\n\r\n",
        b"A: x\ry\r\n\r\n",  # a lone carriage return ends a line for the feed parser
        b"A: x\r\r\nB: y\r\n\r\n",
        b"A: 1\nB: 2\n\n",  # bare line feeds
        b"A: 1",  # the stream ends inside the block
        "X-Name: caf\u00e9\r\n\r\n".encode("latin-1"),
        b"Content-Type: multipart/mixed\r\n\r\n",  # MIME: the feed parser records defects
        b"Content-Type: multipart/mixed; boundary=x\r\n\r\n",
        b"Content-Type: message/rfc822\r\n\r\n",  # MIME: a message inside
        b"content-type:  Message/Partial\r\n\r\n",
    ],
)
def test_the_message_is_the_standard_librarys(block: bytes) -> None:
    _same(block)


_LINE = st.lists(
    st.sampled_from([b"A", b"Content-Type", b"x-amz", b":", b" ", b"\t", b"\r", b"From ", b"v", b"\xe9", b"-"]),
    max_size=8,
).map(b"".join)
_ENDING = st.sampled_from([b"\r\n", b"\n"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_LINE, _ENDING), max_size=6), st.sampled_from([b"\r\n", b"\n", b""]))
def test_any_block_gives_the_standard_librarys_message(lines: list[tuple[bytes, bytes]], end: bytes) -> None:
    _same(b"".join(line + ending for line, ending in lines) + end)


def test_the_limits_are_the_standard_librarys() -> None:
    with pytest.raises(http.client.LineTooLong):
        _fast(b"A: " + b"x" * 70000 + b"\r\n\r\n")
    with pytest.raises(http.client.HTTPException, match="more than 100 headers"):
        _fast(b"A: 1\r\n" * 101 + b"\r\n")


def test_install_serves_http_server_and_http_client(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http.client, "parse_headers", http_headers._standard_parse_headers)
    http_headers.install()
    assert http.client.parse_headers is http_headers.parse_headers
