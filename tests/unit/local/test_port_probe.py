"""`nexus up` right after a Ctrl-C starts at once: the port probe, like the servers, binds with
SO_REUSEADDR, so connections of the last run lingering in TIME_WAIT do not make a port "taken"."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from nexus.local.runtime import _port_free, free_port

HOST = "127.0.0.1"


def _server_closed_connection_on(port: int) -> None:
    """Serve one connection on ``port`` and close it server side first (as a stopped server
    does), which leaves the server's end in TIME_WAIT for a minute."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, port))
        listener.listen()
        client = socket.create_connection((HOST, port))
        served, _ = listener.accept()
        served.close()
        client.recv(1)  # the server's FIN
        client.close()


@pytest.fixture
def time_wait_port() -> Iterator[int]:
    port = free_port()
    _server_closed_connection_on(port)
    with socket.socket() as plain, pytest.raises(OSError):  # what the probe saw before
        plain.bind((HOST, port))
    yield port


def test_a_port_with_connections_in_time_wait_is_free(time_wait_port: int) -> None:
    # GIVEN a port whose last connections linger in TIME_WAIT (the last run was just stopped)
    # WHEN `nexus up` probes it
    free = _port_free(HOST, time_wait_port)
    # THEN it is free
    assert free


def test_the_api_server_binds_a_port_in_time_wait(time_wait_port: int) -> None:
    from nexus.local.apigw import make_server

    # GIVEN a port in TIME_WAIT WHEN the API server binds it THEN it listens there
    server = make_server(None, HOST, time_wait_port)  # type: ignore[arg-type]  # bound, never served
    try:
        assert server.server_address[1] == time_wait_port
    finally:
        server.server_close()


def test_the_embedded_aws_server_binds_a_port_in_time_wait(time_wait_port: int) -> None:
    from werkzeug.serving import make_server

    # GIVEN a port in TIME_WAIT WHEN the embedded AWS's server (werkzeug's, as nexus.local.aws_server
    # makes it) binds it THEN it listens there
    server = make_server(HOST, time_wait_port, lambda environ, start_response: [], threaded=True)
    try:
        assert server.server_address[1] == time_wait_port
    finally:
        server.server_close()


def test_a_port_another_process_listens_on_is_taken() -> None:
    # GIVEN a server listening on a port
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((HOST, 0))
        listener.listen()
        port = listener.getsockname()[1]
        # WHEN `nexus up` probes it THEN it is taken
        assert not _port_free(HOST, port)
