"""The admin API's OpenAPI document (app.edge.admin.openapi): valid OpenAPI 3.1, one
operation per route of the edge under /api/v1 and no other, served without the key."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.edge.admin.openapi import admin_document
from app.edge.admin.routes import create_admin_app
from app.edge.api_keys import HEADER, ApiKeyGate
from app.edge.keys import API_KEY_GATE
from app.edge.server import create_edge_app
from app.settings import Settings
from tests.openapi import check_examples, check_openapi_31, differences

API_KEY = "test-key"


def test_the_admin_document_is_valid_openapi_3_1() -> None:
    """The OpenAPI 3.1 meta-schema, and JSON Schema 2020-12 for each of its schemas."""
    check_openapi_31(admin_document())


def test_every_request_example_fits_its_schema() -> None:
    """The bodies a reader would copy: a new entity of each kind, a change of each,
    an access rule, a catalog document."""
    assert check_examples(admin_document()) == 8


def test_the_admin_document_has_every_route_of_the_edge_under_api_v1_and_no_other(
    tmp_path: Path,
) -> None:
    """Both ways: a route added without its operation, or an operation whose route
    went, fails here."""
    app = create_edge_app(Settings.from_env({"IMPTRACK_HOME": str(tmp_path)}))
    assert differences(app, admin_document()) == {
        "routes missing from the document": [],
        "documented operations without a route": [],
    }


def test_the_route_check_names_what_either_side_lacks() -> None:
    """The check sees through aiohttp's patterns: an alternation is a path per word,
    a placeholder its name; and it reports each side's extra."""
    app = web.Application()

    async def answer(request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_get("/api/v1/{kind:offers|affiliates}/{id:[^/]+}", answer)
    app.router.add_get("/healthz", answer)
    document = {
        "servers": [{"url": "/api/v1"}],
        "paths": {"/offers/{id}": {"get": {}}, "/catalog": {"post": {}}},
    }
    assert differences(app, document) == {
        "routes missing from the document": [("GET", "/api/v1/affiliates/{id}")],
        "documented operations without a route": [("POST", "/api/v1/catalog")],
    }


@pytest.fixture
async def admin_client() -> AsyncIterator[TestClient]:
    """The admin sub-application as the edge mounts it, with nothing behind it."""
    edge = web.Application()
    edge[API_KEY_GATE] = ApiKeyGate(API_KEY, logging.getLogger("test"))
    edge.add_subapp("/api/v1", create_admin_app())
    async with TestClient(TestServer(edge)) as client:
        yield client


async def test_the_document_is_served_without_the_key_and_nothing_else_is(
    admin_client: TestClient,
) -> None:
    """GET /api/v1/openapi.json needs no key (it holds no data); the catalog still does."""
    async with admin_client.get("/api/v1/openapi.json") as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert orjson.loads(await response.read()) == admin_document()
    for path in ("/api/v1/catalog", "/api/v1/nope"):
        async with admin_client.get(path) as response:
            assert response.status == 401, path
    async with admin_client.get("/api/v1/openapi.json", headers={HEADER: "wrong"}) as response:
        assert response.status == 200


@pytest.mark.parametrize("body", [b"", b"{", b"\xff"])
async def test_a_catalog_document_that_is_no_json_is_refused_with_errors_like_any_other(
    admin_client: TestClient, body: bytes
) -> None:
    """POST /api/v1/catalog answers every 400 with ``errors`` (schemathesis found the
    unreadable body answered without it, against the document)."""
    async with admin_client.post(
        "/api/v1/catalog", data=body, headers={HEADER: API_KEY}
    ) as response:
        assert response.status == 400
        answer = await response.json()
    assert answer["field"] == "body" and "is not valid JSON" in answer["error"]
    assert answer["errors"] == [{"error": answer["error"], "field": "body"}]


async def test_a_method_a_path_does_not_take_is_405_naming_the_ones_it_does(
    admin_client: TestClient,
) -> None:
    """A 405 carries the Allow header RFC 9110 asks for (schemathesis's
    unsupported_method check holds the API to it), and says it in words."""
    async with admin_client.put("/api/v1/advertisers", headers={HEADER: API_KEY}) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET,HEAD,POST"
        assert await response.json() == {
            "error": "PUT is not a method of this path; it takes GET, HEAD, POST",
            "field": None,
        }
