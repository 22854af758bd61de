"""Typed domain errors and the one error body of NexusTrade.

Every 4xx/5xx answer of the platform is ``{"error": {"code", "message", "field"?}}``; ``field``
appears only when one input field is at fault. Domain code raises the subclasses below; the HTTP
edge (``nexus_common.http``) maps them to responses in one place.
"""

from __future__ import annotations

from typing import Any, ClassVar


class NexusError(Exception):
    """A domain error with a stable snake_case ``code`` and an HTTP status."""

    status: int = 400
    default_code: ClassVar[str] = "bad_request"

    def __init__(
        self,
        code: str | None = None,
        message: str = "",
        field: str | None = None,
        status: int | None = None,
    ) -> None:
        self.code = code or self.default_code
        self.message = message or self.code.replace("_", " ")
        self.field = field
        if status is not None:
            if not 400 <= status <= 599:
                raise ValueError(f"not an error status: {status}")
            self.status = status
        super().__init__(self.message)

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.field)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(code={self.code!r}, message={self.message!r}, "
            f"field={self.field!r}, status={self.status})"
        )


class ValidationFailed(NexusError):
    status = 400
    default_code = "invalid_request"


class Unauthorized(NexusError):
    status = 401
    default_code = "unauthorized"


class Forbidden(NexusError):
    status = 403
    default_code = "forbidden"


class NotFound(NexusError):
    status = 404
    default_code = "not_found"


class Conflict(NexusError):
    status = 409
    default_code = "conflict"


class Unavailable(NexusError):
    status = 503
    default_code = "unavailable"


def error_body(code: str, message: str, field: str | None = None) -> dict[str, Any]:
    """The NexusTrade error body: ``{"error": {"code", "message", "field"?}}``."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        error["field"] = field
    return {"error": error}
