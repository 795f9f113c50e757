"""The dashboard's door (reports.dashboard): the login form takes the API key and
gives a session cookie; the page, its pipeline figures and the stats API admit the
session; nothing else does, and the key never appears in a URL or a page."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from reports.dashboard.sessions import COOKIE, Sessions
from tests.unit.reports.conftest import API_KEY


async def _log_in(client: TestClient, key: str) -> tuple[int, str]:
    async with client.post(
        "/dashboard/login", data={"api_key": key}, allow_redirects=False
    ) as response:
        return response.status, await response.text()


async def test_the_page_sends_a_stranger_to_the_login_form(stats_client: TestClient) -> None:
    async with stats_client.get("/dashboard", allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == "/dashboard/login"
    async with stats_client.get("/dashboard/login") as response:
        assert response.status == 200
        page = await response.text()
        assert 'type="password"' in page and "{message}" not in page
    for path in ("/dashboard/pipeline", "/api/v1/stats/daily"):
        async with stats_client.get(path) as response:
            assert response.status == 401, path


@pytest.mark.parametrize(
    ("key", "status", "said"),
    [
        ("", 400, "Enter the installation"),
        ("guess", 401, "not this installation"),
        ("<script>", 401, "not this installation"),
    ],
)
async def test_a_wrong_key_is_refused_with_the_form_again(
    stats_client: TestClient, key: str, status: int, said: str
) -> None:
    got, page = await _log_in(stats_client, key)
    assert got == status and said in page and "api_key" in page


async def test_the_key_opens_the_page_the_api_and_the_pipeline_until_logout(
    stats_client: TestClient,
) -> None:
    async with stats_client.post(
        "/dashboard/login", data={"api_key": API_KEY}, allow_redirects=False
    ) as response:
        assert response.status == 303 and response.headers["Location"] == "/dashboard"
        cookie = response.cookies[COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict"
        assert API_KEY not in cookie.value
    async with stats_client.get("/dashboard") as response:
        assert response.status == 200
        page = await response.text()
        assert "/dashboard/assets/plotly.min.js" in page and API_KEY not in page
        assert "default-src 'self'" in response.headers["Content-Security-Policy"]
    async with stats_client.get("/api/v1/stats/postback-errors") as response:
        assert response.status == 200, await response.text()
        assert (await response.json())["rows"] == []
    async with stats_client.get("/dashboard/pipeline") as response:
        assert response.status == 200
        shown = await response.json()
        assert {"processes", "lag", "rates_per_second", "series"} <= set(shown)
    async with stats_client.post("/dashboard/logout", allow_redirects=False) as response:
        assert response.status == 303 and response.headers["Location"] == "/dashboard/login"
        assert response.cookies[COOKIE]["max-age"] == "0"
    async with stats_client.get("/api/v1/stats/daily") as response:
        assert response.status == 401


async def test_the_assets_are_served_from_here(stats_client: TestClient) -> None:
    async with stats_client.get("/dashboard/assets/plotly.min.js") as response:
        assert response.status == 200
        assert (await response.read()).startswith(b"/**\n* plotly.js v")
    async with stats_client.get("/dashboard/assets/dashboard.js") as response:
        assert response.status == 200
    async with stats_client.get("/dashboard/assets/..%2Fsessions.py") as response:
        assert response.status == 404


def test_a_session_is_signed_and_expires() -> None:
    now = [1_000_000.0]
    sessions = Sessions(API_KEY, lifetime=60, clock=lambda: now[0])
    session = sessions.new()
    assert sessions.valid(session)
    expiry, nonce, signature = session.split(".")
    assert not sessions.valid(f"{int(expiry) + 3600}.{nonce}.{signature}")
    assert not Sessions("another key").valid(session)
    assert not sessions.valid("") and not sessions.valid("a.b") and not sessions.valid(None)
    now[0] += 61
    assert not sessions.valid(session)
