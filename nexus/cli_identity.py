"""Identity commands of the ``nexus`` CLI: ``users grant|revoke|disable``, ``auth rotate-signing-key``,
``openapi`` (build the served OpenAPI document from the template and the views' models)."""

from __future__ import annotations

import importlib
import json
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, Final

import typer

from nexus import platform as target_platform

OPENAPI_FILE: Final = Path(__file__).resolve().parent.parent / "functions" / "auth" / "nexus_auth" / "openapi.json"


def build_openapi(platform: Any) -> dict[str, Any]:
    """The OpenAPI document of every route ``platform`` (``nexus.local.model.Platform``) serves."""
    from nexus_common.openapi import DocumentedRoute, build_document, chalice_view

    routes = []
    for route in platform.routes:
        function = platform.functions[route.function]
        module_name, _, attribute = function.handler.rpartition(".")
        target = getattr(importlib.import_module(module_name), attribute, None)
        view = chalice_view(target, route.method, route.path) if hasattr(target, "routes") else target
        routes.append(DocumentedRoute(route.method, route.path, route.authorizer is not None, view))
    document: dict[str, Any] = build_document(routes, title="NexusTrade API", version=metadata.version("nexustrade"))
    return document


def openapi_text(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=1, sort_keys=False) + "\n"


def template_platform() -> Any:
    """The template's platform model, read offline (resources made in an in-memory moto)."""
    import os

    from moto import mock_aws

    from nexus.local.model import build_platform
    from nexus.local.provision import AwsClients, load

    saved = {k: os.environ.get(k) for k in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        with mock_aws():
            stack, _ = load(AwsClients(endpoint_url=None, region="us-east-1"), create=True)
            return build_platform(stack)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def register(app: typer.Typer) -> None:
    """Add this module's commands to the CLI."""
    users_app = typer.Typer(help="Operator commands for users.", no_args_is_help=True)
    app.add_typer(users_app, name="users")
    auth_app = typer.Typer(help="Operator commands for authentication.", no_args_is_help=True)
    app.add_typer(auth_app, name="auth")

    def _service() -> Any:
        table = target_platform.tables()
        from nexus_auth.passwords import Passwords
        from nexus_auth.repo import DynamoIdentityStore, TableNames
        from nexus_auth.service import IdentityService
        from nexus_common.audit import KinesisAuditSink

        store = DynamoIdentityStore(
            TableNames(table("UsersTable"), table("ApiKeysTable"), table("TokensTable"), table("AccountsTable"))
        )
        return IdentityService(store, Passwords(), None, KinesisAuditSink(table("AuditEventsStream")))

    def _change(user: str, role: str, grant: bool) -> None:
        from nexus_common.errors import NexusError

        service = _service()
        try:
            user_id = service.user_id_for(user)
            roles = service.change_role(user_id, role, grant, "operator")
        except NexusError as exc:
            typer.echo(json.dumps(exc.body()), err=True)
            raise typer.Exit(2) from exc
        typer.echo(json.dumps({"user_id": user_id, "roles": roles}))

    @users_app.command("grant")
    @target_platform.command
    def grant(
        user: Annotated[str, typer.Option("--user", help="The user's id (usr_...) or email.")],
        role: Annotated[str, typer.Option("--role", help="trader, compliance or admin.")],
    ) -> None:
        """Give a user a role (recorded as an audit event)."""
        _change(user, role, True)

    @users_app.command("revoke")
    @target_platform.command
    def revoke(
        user: Annotated[str, typer.Option("--user", help="The user's id (usr_...) or email.")],
        role: Annotated[str, typer.Option("--role", help="trader, compliance or admin.")],
    ) -> None:
        """Take a role away from a user (recorded as an audit event)."""
        _change(user, role, False)

    @users_app.command("disable")
    @target_platform.command
    def disable(
        user: Annotated[str, typer.Option("--user", help="The user's id (usr_...) or email.")],
    ) -> None:
        """Disable a user: every key and session stops at once, open WebSockets are closed
        (recorded as an audit event)."""
        from nexus_common.errors import NexusError

        service = _service()
        try:
            user_id = service.user_id_for(user)
            service.disable_user(user_id, "operator")
        except NexusError as exc:
            typer.echo(json.dumps(exc.body()), err=True)
            raise typer.Exit(2) from exc
        typer.echo(json.dumps({"user_id": user_id, "status": "disabled"}))

    @auth_app.command("rotate-signing-key")
    @target_platform.command
    def rotate() -> None:
        """Make a new access-token signing key current; tokens signed with the previous key stay
        valid until they expire, so nobody is logged out."""
        from nexus_auth.repo import rotate_signing_key

        table = target_platform.tables()
        typer.echo(json.dumps({"kid": rotate_signing_key(table("SigningKeySecret"))}))

    @app.command("openapi")
    def openapi(
        check: Annotated[bool, typer.Option("--check", help="Fail if the shipped document is not current.")] = False,
    ) -> None:
        """Build the OpenAPI document served at /openapi.json from the template's routes and the
        views' pydantic models (functions/auth/nexus_auth/openapi.json)."""
        text = openapi_text(build_openapi(template_platform()))
        if check:
            current = OPENAPI_FILE.read_text(encoding="utf-8") if OPENAPI_FILE.exists() else ""
            if current != text:
                typer.echo(f"{OPENAPI_FILE} is not current: run `nexus openapi`", err=True)
                raise typer.Exit(1)
            typer.echo("openapi.json is current")
            return
        OPENAPI_FILE.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {OPENAPI_FILE}")
