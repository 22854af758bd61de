"""Which credentials have ended, for the open WebSockets. No boto3 here.

The auth service publishes its security decisions as audit events; three of them end a
credential: ``api_key_revoked`` (aggregate: the key's display id; actor: its user),
``session_revoked`` (a logout or a refresh-token reuse; aggregate: the user; ``session_id`` in
the details) and ``user_disabled`` (aggregate: the user). A subscription made with an ended
credential is refused with ``CredentialRevoked`` (401) and its connection closed.
"""

from __future__ import annotations

from typing import Any, Final

from nexus_common.errors import Unauthorized

ENDING_KINDS: Final = frozenset({"api_key_revoked", "session_revoked", "user_disabled"})


class CredentialRevoked(Unauthorized):
    """The connection's credential was revoked, logged out or its user disabled: 401, closed."""


def ended_credential(event: dict[str, Any]) -> tuple[str, str, str] | None:
    """``(user_id, key_id, session_id)`` of a credential the audit event ends, else None
    (``key_id`` and ``session_id`` both empty: every credential of the user)."""
    kind = event.get("kind")
    if kind not in ENDING_KINDS:
        return None
    details = event.get("details") if isinstance(event.get("details"), dict) else {}
    if kind == "api_key_revoked":
        user_id, key_id, session_id = str(event.get("actor") or ""), str(event.get("aggregate_id") or ""), ""
        if not key_id:
            return None
    elif kind == "session_revoked":
        user_id, key_id, session_id = str(event.get("aggregate_id") or ""), "", str(details.get("session_id") or "")
        if not session_id:
            return None
    else:
        user_id, key_id, session_id = str(event.get("aggregate_id") or ""), "", ""
    if not user_id.startswith("usr_"):
        return None
    return user_id, key_id, session_id
