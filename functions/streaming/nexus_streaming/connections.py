"""The connections table as the streaming functions use it. The credential-aware store, ``Guard``
and ``GuardedPublisher`` live in the shared kernel (``nexus_common.guarded_push``: the analytics
push guards its private channel with them too); they are imported here under their old names.
What stays is the streaming service's own: which channels are private, and the 401 a subscription
gets when its connection's credential is no longer good.
"""

from __future__ import annotations

from typing import Final

from nexus_common.errors import Unauthorized
from nexus_common.guarded_push import (
    CredentialTables,
    Guard,
    GuardedPublisher,
    StreamingConnections,
    credential_check,
    user_pk,
)

from nexus_streaming.domain import PRIVATE_CHANNELS

__all__ = [
    "PRIVATE_CHANNELS",
    "CredentialRevoked",
    "CredentialTables",
    "Guard",
    "GuardedPublisher",
    "StreamingConnections",
    "credential_check",
    "is_private",
    "user_pk",
]

_PRIVATE_PREFIXES: Final = tuple(f"{name}:" for name in PRIVATE_CHANNELS)


def is_private(channel: str) -> bool:
    return channel.startswith(_PRIVATE_PREFIXES)


class CredentialRevoked(Unauthorized):
    """The connection's credential was revoked, logged out or its user disabled: 401, closed."""
