"""``GET /openapi.json`` and ``GET /docs`` (public): the API's OpenAPI 3 document and a readable page.

The document is built from the template's routes and the pydantic models the Chalice views
declare (``nexus_common.openapi``) by ``nexus openapi`` and shipped with this function as
``openapi.json``; a test fails when it is not the document the code would build.
"""

from __future__ import annotations

import html
import json
from functools import cache
from pathlib import Path
from typing import Any, Final

DOCUMENT: Final = Path(__file__).with_name("openapi.json")
_HEADERS: Final = {"Cache-Control": "public, max-age=60", "X-Content-Type-Options": "nosniff"}


@cache
def document_text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


@cache
def docs_page() -> str:
    doc = json.loads(document_text())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>",
        html.escape(doc["info"]["title"]),
        "</title><style>body{font-family:sans-serif;max-width:60em;margin:auto}code,pre{background:#f4f4f4}"
        "h3{margin-bottom:0}</style></head><body>",
        f"<h1>{html.escape(doc['info']['title'])} {html.escape(doc['info']['version'])}</h1>",
        f"<p>{html.escape(doc['info'].get('description', ''))}</p>",
        "<p>Machine-readable: <a href='openapi.json'>openapi.json</a></p>",
    ]
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            auth = "public" if not op.get("security") else "Bearer token or API key"
            parts.append(f"<h3><code>{method.upper()} {html.escape(path)}</code></h3>")
            parts.append(f"<p>{html.escape(op.get('summary', ''))} <em>({auth})</em></p>")
            body = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            if body:
                parts.append(f"<p>Body: <code>{html.escape(body.get('$ref', '').rsplit('/', 1)[-1])}</code></p>")
            for status, answer in op.get("responses", {}).items():
                schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
                name = schema.get("$ref", "").rsplit("/", 1)[-1]
                parts.append(f"<p>{html.escape(status)}: <code>{html.escape(name)}</code></p>")
    parts.append("<h2>Schemas</h2>")
    for name, schema in doc["components"]["schemas"].items():
        parts.append(f"<h3 id='{html.escape(name)}'>{html.escape(name)}</h3>")
        parts.append(f"<pre>{html.escape(json.dumps(schema, indent=2))}</pre>")
    parts.append("</body></html>")
    return "".join(parts)


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("resource") == "/docs" or event.get("path") == "/docs":
        return {
            "statusCode": 200,
            "headers": {**_HEADERS, "Content-Type": "text/html; charset=utf-8",
                        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
            "body": docs_page(),
            "isBase64Encoded": False,
        }
    return {
        "statusCode": 200,
        "headers": {**_HEADERS, "Content-Type": "application/json"},
        "body": document_text(),
        "isBase64Encoded": False,
    }
