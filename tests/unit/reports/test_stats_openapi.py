"""The stats API's OpenAPI document (reports.stats_openapi): valid OpenAPI 3.1, one
operation per route of the exporter under /api/v1 and no other, served without the
key, and each format answered as the media type it documents."""

from __future__ import annotations

from pathlib import Path

import orjson
from aiohttp.test_utils import TestClient

from app.edge.api_keys import HEADER
from app.settings import Settings
from reports.exporter_server import API_FORMATS, create_exporter_app
from reports.stats_openapi import FORMAT_MEDIA_TYPES, stats_document
from tests.openapi import check_openapi_31, differences
from tests.unit.reports.conftest import API_KEY


def test_the_stats_document_is_valid_openapi_3_1() -> None:
    """The OpenAPI 3.1 meta-schema, and JSON Schema 2020-12 for each of its schemas."""
    check_openapi_31(stats_document())


def test_the_stats_document_has_every_route_of_the_exporter_under_api_v1_and_no_other(
    tmp_path: Path,
) -> None:
    """Both ways; /healthz and /metrics are not the stats API's."""
    app = create_exporter_app(Settings.from_env({"IMPTRACK_HOME": str(tmp_path)}))
    assert differences(app, stats_document()) == {
        "routes missing from the document": [],
        "documented operations without a route": [],
    }


async def test_the_document_is_served_without_the_key(stats_client: TestClient) -> None:
    """GET /api/v1/openapi.json needs no key (it holds no data); a slice still does."""
    async with stats_client.get("/api/v1/openapi.json") as response:
        assert response.status == 200
        assert orjson.loads(await response.read()) == stats_document()
    async with stats_client.get("/api/v1/stats/daily") as response:
        assert response.status == 401


async def test_each_format_is_answered_as_the_media_type_the_document_names(
    stats_client: TestClient,
) -> None:
    """The document's formats are the API's, each with its content type."""
    assert tuple(FORMAT_MEDIA_TYPES) == API_FORMATS
    for fmt, media_type in FORMAT_MEDIA_TYPES.items():
        async with stats_client.get(
            "/api/v1/stats/daily", params={"format": fmt}, headers={HEADER: API_KEY}
        ) as response:
            assert response.status == 200, fmt
            assert response.content_type == media_type, fmt
