"""OpenAPI 3.1 documents of the HTTP APIs: the frame the admin API's and the stats
API's share, and serving one at ``/api/v1/openapi.json``.

Each document is built from the code it describes (the catalog's statuses and
limits, the slices and their parameters), so an enum or a limit cannot drift from
what the handlers accept; its paths are checked against the app's routes by a test
per API (tests/unit/test_admin_openapi.py, tests/unit/reports/test_stats_openapi.py),
and its answers against the running processes by schemathesis in `make faults`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import cache
from typing import Any

import orjson
from aiohttp import web

from app.edge.api_keys import HEADER

OPENAPI_VERSION = "3.1.0"
BASE_PATH = "/api/v1"
DOCUMENT_PATH = "/openapi.json"
"""Under BASE_PATH: each process serves the document of the API it serves there."""
DOCUMENT_VERSION = "1"
"""The API's version, as in BASE_PATH: an answer a client could not read any more
would be /api/v2."""
SECURITY_SCHEME = "apiKey"

Schema = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.Response]]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def json_answer(description: str, schema: Schema) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def api_document(
    *,
    title: str,
    description: str,
    server: str,
    paths: Mapping[str, Any],
    schemas: Mapping[str, Schema],
    other_schemes: Mapping[str, Schema] | None = None,
) -> dict[str, Any]:
    """A whole document: ``paths`` (relative to BASE_PATH) and the document's own
    path, which is served without the key; ``other_schemes``: ways in besides the
    key, for the operations that name them."""
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": DOCUMENT_VERSION, "description": description},
        # Relative: resolved against the address the document was fetched from, so
        # it is right behind any host, port or proxy in front of the process.
        "servers": [{"url": BASE_PATH, "description": server}],
        "security": [{SECURITY_SCHEME: []}],
        "paths": {DOCUMENT_PATH: _document_operation(title), **paths},
        "components": {
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": HEADER,
                    "description": (
                        "The installation's API key (IMPTRACK_API_KEY, or the file "
                        "IMPTRACK_HOME/api-key). Without it, or with a wrong one: 401."
                    ),
                },
                **(other_schemes or {}),
            },
            "schemas": dict(schemas),
        },
    }


def _document_operation(title: str) -> dict[str, Any]:
    return {
        "get": {
            "operationId": "openapiDocument",
            "summary": f"This document: the {title}",
            "description": (
                "Served without the API key: it describes the API and holds none of "
                "the network's data."
            ),
            "security": [],
            "responses": {"200": json_answer("The OpenAPI 3.1 document", {"type": "object"})},
        }
    }


def document_handler(build: Callable[[], dict[str, Any]]) -> Handler:
    """A handler answering the document ``build`` makes, encoded once."""
    encoded = cache(lambda: orjson.dumps(build()))

    async def openapi_document(request: web.Request) -> web.Response:
        return web.Response(body=encoded(), content_type="application/json")

    return openapi_document
