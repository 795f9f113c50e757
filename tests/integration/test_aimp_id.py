"""aimp_id as two edge processes issue it."""

from __future__ import annotations

import aiohttp
import pytest

from app.ids import id_time, is_valid_id
from tests.integration.conftest import RunningStack
from tests.integration.pixels import pixel_params, send_pixels

pytestmark = pytest.mark.integration


async def test_aimp_ids_are_unique_across_two_edge_processes(stack: RunningStack) -> None:
    """New connections spread over both processes; no two impressions share an aimp_id."""
    run = await send_pixels(stack.edge_url, pixel_params(2000, offer_id=21), fresh_connections=True)
    ids = list(run.accepted)
    assert len(ids) == 2000  # a duplicate would have collapsed in the dict
    assert all(is_valid_id(i) for i in ids)
    processes = {i[12:18] for i in ids}  # the per-process random bits
    assert len(processes) == 2, "both edge processes should have answered"


async def test_aimp_ids_follow_the_order_of_requests(stack: RunningStack) -> None:
    """Sequential requests get IDs whose time never goes back, and that carry that time."""
    ids = []
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for _ in range(200):
            async with session.get(f"{stack.edge_url}/imp?offer_id=22&pid=1") as r:
                ids.append(r.headers["X-Aimp-Id"])
    times = [id_time(i) for i in ids]
    assert times == sorted(times)
    per_process: dict[str, list[str]] = {}
    for i in ids:
        per_process.setdefault(i[12:18], []).append(i)
    for issued in per_process.values():
        assert issued == sorted(issued) and len(set(issued)) == len(issued)
