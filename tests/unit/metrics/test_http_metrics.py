"""The requests middleware: labels by route pattern, never by path, and every answer
counted with its status (an error raised as an HTTP exception, a crash as 500)."""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from app.metrics.http import LATENCY, REQUESTS, UNMATCHED, measured, metrics_page
from app.metrics.process import CPU, RESIDENT_MEMORY, ProcessMetrics


def _count(endpoint: str, status: str) -> float:
    return REQUESTS.labels(endpoint, status)._value.get()  # type: ignore[no-any-return]


def _observed(endpoint: str) -> float:
    return next(
        s.value
        for m in LATENCY.collect()
        for s in m.samples
        if s.name.endswith("_count") and s.labels == {"endpoint": endpoint}
    )


async def _ok(request: web.Request) -> web.Response:
    return web.json_response({"offer": request.match_info["offer_id"]})


async def _gone(request: web.Request) -> web.Response:
    raise web.HTTPGone()


async def _broken(request: web.Request) -> web.Response:
    raise RuntimeError("a bug")


@pytest.fixture
async def client() -> TestClient:  # type: ignore[type-arg]
    app = web.Application(middlewares=[measured])
    app.router.add_get("/offers/{offer_id}", _ok)
    app.router.add_get("/gone", _gone)
    app.router.add_get("/broken", _broken)
    app.router.add_get("/metrics", metrics_page)
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_requests_are_counted_by_route_pattern_and_status(client: TestClient) -> None:  # type: ignore[type-arg]
    before = {
        "ok": _count("/offers/{offer_id}", "200"),
        "gone": _count("/gone", "410"),
        "broken": _count("/broken", "500"),
        "unmatched": _count(UNMATCHED, "404"),
    }
    observed = _observed("/offers/{offer_id}") if before["ok"] else 0.0
    for offer in ("1", "2", "3"):
        assert (await client.get(f"/offers/{offer}")).status == 200
    assert (await client.get("/gone")).status == 410
    assert (await client.get("/broken")).status == 500
    assert (await client.get("/no/such/path/12345")).status == 404

    assert _count("/offers/{offer_id}", "200") - before["ok"] == 3
    assert _count("/gone", "410") - before["gone"] == 1
    assert _count("/broken", "500") - before["broken"] == 1
    assert _count(UNMATCHED, "404") - before["unmatched"] == 1
    assert _observed("/offers/{offer_id}") - observed == 3
    # No path became a label.
    page = await (await client.get("/metrics")).text()
    assert "12345" not in page and "/offers/1" not in page
    assert 'imptrack_http_requests_total{endpoint="/offers/{offer_id}",status="200"}' in page


def test_the_process_records_its_memory_and_cpu() -> None:
    process = ProcessMetrics("unit")
    process.sample()
    used_before = CPU.labels("unit")._value.get()
    sum(range(2_000_000))  # some CPU
    process.sample()
    assert RESIDENT_MEMORY.labels("unit")._value.get() > 10_000_000
    assert CPU.labels("unit")._value.get() > used_before
