"""OpenAPI 3 from the pydantic models of the Chalice routes.

A route declares what it reads and answers with ``@documented`` (below ``@app.route``)::

    from nexus_common.openapi import documented

    class NewThing(BaseModel):
        model_config = ConfigDict(extra="forbid")
        name: str = Field(min_length=1, max_length=100)

    class ThingOut(BaseModel):
        thing_id: str
        name: str

    class ThingEnvelope(BaseModel):
        thing: ThingOut

    @app.route("/v1/things", methods=["POST"])
    @documented(summary="Create a thing", request=NewThing, response=ThingEnvelope, status=201, tags=("things",))
    def create_thing() -> Response:
        body = parse_body(app.current_request, NewThing)
        ...

``query=`` takes the model given to ``parse_query`` (each field becomes a query parameter).
Nothing changes at run time: the declaration is read by ``build_document``, which ``nexus openapi``
calls with every route the template declares (method, path, whether the authorizer guards it and
the view function), to write the document served at ``GET /openapi.json`` (human docs at
``GET /docs``). A route without ``@documented`` still appears, with its path parameters and the
error body. Every operation answers errors with the one error body (``Error``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from pydantic import BaseModel

F = TypeVar("F", bound=Callable[..., Any])

SPEC_ATTRIBUTE: Final = "__nexus_openapi__"
_PATH_PARAM: Final = re.compile(r"\{([A-Za-z0-9_]+)\+?\}")
_REF_TEMPLATE: Final = "#/components/schemas/{model}"

ERROR_SCHEMA: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    },
}


@dataclass(frozen=True)
class RouteDoc:
    summary: str = ""
    request: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    tags: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True)
class DocumentedRoute:
    """One route of the API as the template declares it, with its view (for ``@documented``)."""

    method: str
    path: str
    authenticated: bool
    view: Callable[..., Any] | None = None
    doc: RouteDoc | None = None
    tags: tuple[str, ...] = field(default=())


def documented(
    *,
    summary: str = "",
    request: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    status: int = 200,
    tags: tuple[str, ...] = (),
    description: str = "",
) -> Callable[[F], F]:
    """Declare a route's request body, query and success response models (see module doc)."""
    spec = RouteDoc(
        summary=summary,
        request=request,
        query=query,
        response=response,
        status=status,
        tags=tuple(tags),
        description=description,
    )

    def mark(view: F) -> F:
        setattr(view, SPEC_ATTRIBUTE, spec)
        return view

    return mark


def route_doc(view: Callable[..., Any] | None) -> RouteDoc | None:
    found = getattr(view, SPEC_ATTRIBUTE, None) if view is not None else None
    return found if isinstance(found, RouteDoc) else None


def chalice_view(app: Any, method: str, path: str) -> Callable[..., Any] | None:
    """The view function of ``method path`` in a Chalice app, if it has one."""
    routes = getattr(app, "routes", None)
    if not isinstance(routes, dict):
        return None
    entry = (routes.get(path) or {}).get(method.upper())
    return getattr(entry, "view_function", None) if entry is not None else None


class _Schemas:
    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": ERROR_SCHEMA}

    def ref(self, model: type[BaseModel], mode: str) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=_REF_TEMPLATE, mode=mode)  # type: ignore[arg-type]
        for name, sub in (schema.pop("$defs", None) or {}).items():
            self.components.setdefault(name, sub)
        name = model.__name__
        self.components.setdefault(name, schema)
        return {"$ref": _REF_TEMPLATE.format(model=name)}

    def inline(self, model: type[BaseModel]) -> dict[str, Any]:
        schema = model.model_json_schema(ref_template=_REF_TEMPLATE, mode="validation")
        for name, sub in (schema.pop("$defs", None) or {}).items():
            self.components.setdefault(name, sub)
        return schema


def _error_responses() -> dict[str, Any]:
    schema = {"$ref": "#/components/schemas/Error"}
    error = {"description": "error", "content": {"application/json": {"schema": schema}}}
    return {"4XX": error, "5XX": error}


def _operation(route: DocumentedRoute, schemas: _Schemas) -> dict[str, Any]:
    doc = route.doc or route_doc(route.view) or RouteDoc()
    operation: dict[str, Any] = {
        "operationId": f"{route.method.lower()}_{re.sub(r'[^A-Za-z0-9]+', '_', route.path).strip('_')}",
    }
    if doc.summary:
        operation["summary"] = doc.summary
    if doc.description:
        operation["description"] = doc.description
    tags = doc.tags or route.tags
    if tags:
        operation["tags"] = list(tags)
    parameters: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string", "minLength": 1}}
        for name in _PATH_PARAM.findall(route.path)
    ]
    if doc.query is not None:
        query = schemas.inline(doc.query)
        required = set(query.get("required") or ())
        for name, schema in (query.get("properties") or {}).items():
            parameters.append({"name": name, "in": "query", "required": name in required, "schema": schema})
    if parameters:
        operation["parameters"] = parameters
    if doc.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(doc.request, "validation")}},
        }
    success: dict[str, Any] = {"description": "success"}
    if doc.response is not None:
        success["content"] = {"application/json": {"schema": schemas.ref(doc.response, "serialization")}}
    operation["responses"] = {str(doc.status): success, **_error_responses()}
    operation["security"] = [{"bearer": []}] if route.authenticated else []
    return operation


def build_document(routes: Iterable[DocumentedRoute], *, title: str, version: str) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``routes`` (deterministic: same routes, same document)."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for route in sorted(routes, key=lambda r: (r.path, r.method)):
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, schemas)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": (
                "Authenticate with `Authorization: Bearer <access token>` (from POST /v1/auth/login) or "
                "`Authorization: Bearer nxk_...` (an API key). `X-Account-Id` picks which of your accounts acts. "
                "Every error answers `{\"error\": {\"code\", \"message\", \"field\"?}}`."
            ),
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
