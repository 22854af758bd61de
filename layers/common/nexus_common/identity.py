"""Who is calling: the principal the edge authorizer put in the request context.

The authorizer (``functions/auth``) answers every authenticated request with these context keys
(all strings, lists comma-separated), which API Gateway hands to the function as
``requestContext.authorizer``:

* ``user_id``: the user (``usr_...``); an API key created before users existed acts as
  ``legacy:<account_id>``;
* ``account_id``: the acting account: the ``X-Account-Id`` header when the user owns it, else the
  user's default account;
* ``accounts``: every account the credential may act on;
* ``roles``: ``trader``, ``compliance``, ``admin``;
* ``scopes``: ``read`` and/or ``trade`` (a ``read`` credential cannot place or cancel orders);
* ``key_id``: the API key's display id, ``""`` for a login token;
* ``session_id``: the login session (refresh-token family) of a token, ``""`` for an API key.

In a Chalice view::

    from nexus_common.identity import caller, require_role, require_scope

    @app.route("/v1/audit", methods=["GET"])
    def search_audit() -> Response:
        principal = require_role(app.current_request, "compliance", "admin")  # 403 for a trader
        ...

    @app.route("/v1/things", methods=["POST"])
    def make_thing() -> Response:
        principal = require_scope(app.current_request, "trade")  # 403 for a read-only key
        principal.account_id, principal.user_id, principal.roles ...
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from nexus_common.errors import Forbidden, Unauthorized

ROLES: Final = ("trader", "compliance", "admin")
SCOPES: Final = ("read", "trade")


def _split(value: object) -> tuple[str, ...]:
    if not isinstance(value, str) or not value:
        return ()
    return tuple(part for part in (p.strip() for p in value.split(",")) if part)


@dataclass(frozen=True)
class Principal:
    user_id: str
    account_id: str
    accounts: tuple[str, ...]
    roles: tuple[str, ...]
    scopes: tuple[str, ...]
    key_id: str = ""
    session_id: str = ""

    @property
    def via_api_key(self) -> bool:
        return bool(self.key_id)

    def has_role(self, *roles: str) -> bool:
        return any(role in self.roles for role in roles)

    def owns(self, account_id: str) -> bool:
        return account_id in self.accounts

    def to_context(self) -> dict[str, str]:
        """The authorizer context of this principal (the contract above)."""
        return {
            "user_id": self.user_id,
            "account_id": self.account_id,
            "accounts": ",".join(self.accounts),
            "roles": ",".join(self.roles),
            "scopes": ",".join(self.scopes),
            "key_id": self.key_id,
            "session_id": self.session_id,
        }

    @classmethod
    def from_context(cls, context: dict[str, Any]) -> Principal:
        user_id = context.get("user_id")
        account_id = context.get("account_id")
        if not isinstance(account_id, str) or not account_id:
            raise Unauthorized("unauthorized", "missing or invalid credentials")
        accounts = _split(context.get("accounts")) or (account_id,)
        if "scopes" in context:
            scopes = _split(context.get("scopes"))
        else:  # an authorizer answer that predates scopes: a key bound to one account
            scopes = SCOPES
        roles = _split(context.get("roles")) if "roles" in context else ("trader",)
        return cls(
            user_id=user_id if isinstance(user_id, str) and user_id else f"legacy:{account_id}",
            account_id=account_id,
            accounts=accounts,
            roles=roles,
            scopes=scopes,
            key_id=str(context.get("key_id") or ""),
            session_id=str(context.get("session_id") or ""),
        )


def _authorizer_context(request: Any) -> dict[str, Any]:
    if request is None:
        raise RuntimeError("no current request: call from inside a Chalice route")
    raw = getattr(request, "context", None)
    context = raw if isinstance(raw, dict) else {}
    authorizer = context.get("authorizer")
    return authorizer if isinstance(authorizer, dict) else {}


def caller(request: Any) -> Principal:
    """The principal of ``request`` (a Chalice ``Request``); 401 when the authorizer gave none."""
    return Principal.from_context(_authorizer_context(request))


def require_role(request: Any, *roles: str) -> Principal:
    """The caller, if they hold one of ``roles``; else 403 ``forbidden``."""
    principal = caller(request)
    if not principal.has_role(*roles):
        raise Forbidden("forbidden", "this route needs the role " + " or ".join(roles))
    return principal


def require_scope(request: Any, scope: str) -> Principal:
    """The caller, if the credential carries ``scope``; else 403 ``insufficient_scope``."""
    principal = caller(request)
    if scope not in principal.scopes:
        raise Forbidden("insufficient_scope", f"this credential lacks the {scope!r} scope")
    return principal
