"""Requests to the embedded AWS carry their credential scope, not a signature.

The embedded AWS (``nexus.local.aws_server``, moto) checks no signature: it reads a request's
``Authorization`` header only for its credential scope, which names the access key (the account),
the region and the service it routes the request to. Signature Version 4 costs the SDK about an
eighth of a call's CPU (a canonical request, a SHA-256 of the body, four HMACs), on every one of
the 15-20 requests an order costs locally.

``install(endpoint)`` makes this process's ``SigV4Auth`` write, for a request to ``endpoint`` only,
the header a signed request carries, with the same credential scope and no signature (the date,
security token and other headers are set as for a signed request). Requests anywhere else
(LocalStack through ``AWS_ENDPOINT_URL``, AWS itself) are signed as ever. ``nexus up`` sets
``NEXUS_EMBEDDED_AWS`` to the embedded endpoint for itself and its Lambda workers, and only when it
runs the embedded AWS. The module also says whether this process's AWS is the embedded one
(``embedded()``), and names the header the local platform's stream reads send it to wait for
records (``READ_WAIT_HEADER``).
"""

from __future__ import annotations

import os
from typing import Any, Final

from botocore.auth import SIGV4_TIMESTAMP, SigV4Auth
from botocore.compat import get_current_datetime
from botocore.exceptions import NoCredentialsError

# The variable nexus_common.aws reads too (EMBEDDED_AWS_ENV); not imported from it: a container's launcher
# loads this module before the container's own code, whose layer it may not be
ENDPOINT_ENV: Final = "NEXUS_EMBEDDED_AWS"
NO_SIGNATURE: Final = "unsigned"  # where the signature goes: the embedded AWS reads none
# A stream read (``GetRecords``) carrying this header waits at the embedded AWS, up to the
# milliseconds it says, for records to read (``nexus.local.aws_server``); other endpoints ignore it
READ_WAIT_HEADER: Final = "X-Nexus-Wait-Ms"

_signed_add_auth = SigV4Auth.add_auth
_endpoints: tuple[str, ...] = ()


def embedded() -> bool:
    """Whether this process's AWS is the embedded one (``nexus up`` says so in ``ENDPOINT_ENV``)."""
    return bool(os.environ.get(ENDPOINT_ENV))


def scope_header(access_key: str, timestamp: str, region: str, service: str) -> str:
    """The ``Authorization`` header of a request to the embedded AWS: a signed request's, with its
    credential scope and no signature."""
    scope = f"{access_key}/{timestamp[:8]}/{region}/{service}/aws4_request"
    return f"AWS4-HMAC-SHA256 Credential={scope}, SignedHeaders=host;x-amz-date, Signature={NO_SIGNATURE}"


def _add_auth(self: SigV4Auth, request: Any) -> None:
    """``SigV4Auth.add_auth``; for a request to the embedded AWS, the scope without a signature."""
    if type(self) is not SigV4Auth or not str(request.url).startswith(_endpoints):
        return _signed_add_auth(self, request)  # type: ignore[no-any-return]
    if self.credentials is None:
        raise NoCredentialsError()
    request.context["timestamp"] = get_current_datetime().strftime(SIGV4_TIMESTAMP)
    self._modify_request_before_signing(request)  # the date and security token headers, as signed
    request.headers["Authorization"] = scope_header(
        self.credentials.access_key, request.context["timestamp"], self._region_name, self._service_name
    )
    return None


def request_prefixes(endpoint: str | None = None) -> tuple[str, ...]:
    """How the URL of every request to ``endpoint`` (default: ``NEXUS_EMBEDDED_AWS``) starts, and of
    no request elsewhere (an endpoint whose address only starts like it); () when there is none."""
    endpoint = endpoint if endpoint is not None else os.environ.get(ENDPOINT_ENV)
    if not endpoint:
        return ()
    base = endpoint.rstrip("/")
    return base + "/", base + "?"


def install(endpoint: str | None = None) -> bool:
    """Send requests to ``endpoint`` (default: ``NEXUS_EMBEDDED_AWS``) with their scope only;
    False when there is none (nothing changes)."""
    global _endpoints
    prefixes = request_prefixes(endpoint)
    if not prefixes:
        return False
    _endpoints = tuple(dict.fromkeys((*_endpoints, *prefixes)))
    SigV4Auth.add_auth = _add_auth
    return True
