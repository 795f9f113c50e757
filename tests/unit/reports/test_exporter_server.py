"""The stats API's status for each error: the error's type carries it
(reports.exporter_server, app.exceptions)."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from app.edge.api_keys import HEADER
from reports.slices import SLICES
from tests.unit.reports.conftest import API_KEY


async def _get(client: TestClient, path: str, **params: str) -> tuple[int, object]:
    async with client.get(path, params=params, headers={HEADER: API_KEY}) as response:
        return response.status, await response.json()


async def test_an_unknown_slice_is_404_naming_the_known_ones(stats_client: TestClient) -> None:
    assert await _get(stats_client, "/api/v1/stats/weekly") == (
        404,
        {"error": f"unknown slice 'weekly'; known: {', '.join(SLICES)}"},
    )


@pytest.mark.parametrize(
    ("params", "error"),
    [
        ({"limit": "many"}, "limit 'many' is not a whole number"),
        (
            {"status": "lost"},
            "unknown conversion status 'lost'; known: approved, pending, declined, hold",
        ),
        (
            {"tz": "Mars/Olympus"},
            "--tz 'Mars/Olympus' is not an IANA timezone name (e.g. UTC, Europe/Berlin)",
        ),
    ],
)
async def test_a_bad_parameter_is_400_with_its_message(
    stats_client: TestClient, params: dict[str, str], error: str
) -> None:
    assert await _get(stats_client, "/api/v1/stats/daily", **params) == (400, {"error": error})


async def test_an_error_found_while_the_slice_runs_is_400_too(stats_client: TestClient) -> None:
    """A sort column is checked against the slice's columns in the query itself."""
    status, body = await _get(stats_client, "/api/v1/stats/daily", sort="colour")
    assert status == 400
    assert isinstance(body, dict) and body["error"].startswith("cannot sort by 'colour'")


async def test_a_good_request_is_answered(stats_client: TestClient) -> None:
    status, body = await _get(stats_client, "/api/v1/stats/daily")
    assert status == 200 and isinstance(body, dict) and body["rows"] == []
