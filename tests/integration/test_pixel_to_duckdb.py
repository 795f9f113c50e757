"""Pixels through the real edge, broker, worker and exporter into DuckDB."""

from __future__ import annotations

import aiohttp
import pytest

from tests.integration.conftest import RunningStack
from tests.integration.pixels import pixel_params, send_pixels

pytestmark = pytest.mark.integration


async def test_pixels_arrive_in_duckdb_exactly_once_with_their_fields(
    stack: RunningStack,
) -> None:
    """Every GIF-answered pixel is one DuckDB row with its offer, affiliate, subs and imp_id."""
    before = stack.exported_impressions()
    run = await send_pixels(stack.edge_url, pixel_params(800, offer_id=11, prefix="once"))
    assert len(run.accepted) == 800 and run.refused == 0

    assert stack.wait_exported(before + 800) == before + 800
    rows = stack.query(
        "SELECT aimp_id, offer_id, pid, imp_id, sub1, sub8 FROM impressions WHERE offer_id = 11"
    )
    assert len(rows) == 800
    by_id = {row[0]: row[1:] for row in rows}
    assert by_id.keys() == run.accepted.keys()
    for aimp_id, sent in run.accepted.items():
        assert by_id[aimp_id] == (
            11,
            int(sent["pid"]),
            sent["imp_id"],
            sent["sub1"],
            sent["sub8"],
        )
    hourly = stack.query("SELECT sum(impressions) FROM impressions_hourly WHERE offer_id = 11")
    assert hourly == [(800,)]


async def test_edge_reports_client_ip_and_user_agent(stack: RunningStack) -> None:
    """The impression carries the caller's address and User-Agent; X-Forwarded-For is
    ignored unless trusted proxy hops are configured."""
    before = stack.exported_impressions()
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{stack.edge_url}/imp",
            params={"offer_id": "12", "pid": "5"},
            headers={"User-Agent": "pytest-agent/1", "X-Forwarded-For": "203.0.113.9"},
        ) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"].startswith("no-store")
            assert len(await response.read()) == 43
    stack.wait_exported(before + 1)
    rows = stack.query("SELECT ua, ip FROM impressions WHERE offer_id = 12")
    assert rows == [("pytest-agent/1", "127.0.0.1")]
