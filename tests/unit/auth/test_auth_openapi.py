"""The OpenAPI document: built from the template's routes and the views' pydantic models, shipped
current, served with human docs."""

from __future__ import annotations

import json
from typing import Any

import pytest
from nexus_auth import docs
from nexus_common.openapi import DocumentedRoute, build_document, documented
from pydantic import BaseModel, ConfigDict, Field

from nexus.cli_identity import OPENAPI_FILE, build_openapi, openapi_text


@pytest.fixture(scope="module")
def built() -> dict[str, Any]:
    from nexus.cli_identity import template_platform

    return build_openapi(template_platform())


def test_the_shipped_document_is_the_one_the_code_builds(built: dict[str, Any]) -> None:
    assert OPENAPI_FILE.read_text(encoding="utf-8") == openapi_text(built), "run `nexus openapi`"


def test_every_route_of_the_template_is_documented_with_its_security(built: dict[str, Any], aws: Any) -> None:
    for route in aws.platform.routes:
        operation = built["paths"][route.path][route.method.lower()]
        assert (operation["security"] == []) == (route.authorizer is None), route.path
        assert operation["responses"]["4XX"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}


def test_bodies_come_from_the_pydantic_models_and_refuse_unknown_fields(built: dict[str, Any]) -> None:
    login = built["paths"]["/v1/auth/login"]["post"]
    assert login["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/LoginRequest"}
    assert login["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenResponse"}
    schemas = built["components"]["schemas"]
    assert schemas["LoginRequest"]["additionalProperties"] is False
    assert set(schemas["LoginRequest"]["required"]) == {"email", "password"}
    assert built["paths"]["/v1/keys/{key_id}"]["delete"]["parameters"][0]["name"] == "key_id"


def test_a_route_declares_its_models_with_documented() -> None:
    class Query(BaseModel):
        model_config = ConfigDict(extra="forbid")
        limit: int = Field(default=10, ge=1, le=100)

    class Thing(BaseModel):
        thing_id: str

    @documented(summary="List things", query=Query, response=Thing, tags=("things",))
    def view() -> None:
        """A view."""

    document = build_document([DocumentedRoute("GET", "/v1/things", True, view)], title="t", version="1")
    operation = document["paths"]["/v1/things"]["get"]
    assert operation["summary"] == "List things" and operation["tags"] == ["things"]
    assert operation["parameters"] == [
        {"name": "limit", "in": "query", "required": False,
         "schema": {"default": 10, "maximum": 100, "minimum": 1, "title": "Limit", "type": "integer"}}
    ]
    assert document["components"]["schemas"]["Thing"]["required"] == ["thing_id"]
    assert operation["security"] == [{"bearer": []}]


def test_schemathesis_loads_the_document() -> None:
    import schemathesis

    schema = schemathesis.openapi.from_dict(json.loads(OPENAPI_FILE.read_text()))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 30


def test_docs_serves_the_document_and_a_readable_page() -> None:
    document = docs.handler({"resource": "/openapi.json", "path": "/openapi.json"}, None)
    assert document["statusCode"] == 200 and json.loads(document["body"])["openapi"] == "3.1.0"
    page = docs.handler({"resource": "/docs", "path": "/docs"}, None)
    assert page["statusCode"] == 200 and page["headers"]["Content-Type"].startswith("text/html")
    assert "POST /v1/auth/login" in page["body"] and "<script" not in page["body"]
