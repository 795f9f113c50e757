"""aimp_id as two edge processes issue it, and what the pixel tells whom."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import aiohttp
import pytest

from app.edge.pixel import TRANSPARENT_GIF
from app.ids import id_time, is_valid_id
from tests.integration.conftest import RunningStack
from tests.integration.pixels import pixel_params, send_pixels

pytestmark = pytest.mark.integration


async def test_aimp_ids_are_unique_across_two_edge_processes(stack: RunningStack) -> None:
    """New connections spread over both processes; no two impressions share an aimp_id,
    and every one passes the stack's keyed check."""
    run = await send_pixels(stack, pixel_params(2000, offer_id=21), fresh_connections=True)
    ids = list(run.accepted)
    assert len(ids) == 2000  # a duplicate would have collapsed in the dict
    assert all(is_valid_id(i) and stack.id_seal.issued(i) for i in ids)
    processes = {stack.id_seal.origin(i) for i in ids}  # the per-process random bits
    assert len(processes) == 2, "both edge processes should have answered"


async def test_aimp_ids_follow_the_order_of_requests(stack: RunningStack) -> None:
    """Sequential requests get IDs whose time never goes back, and that carry that time."""
    ids = []
    connector = aiohttp.TCPConnector(force_close=True)
    async with aiohttp.ClientSession(connector=connector, headers=stack.api_headers) as session:
        for _ in range(200):
            async with session.get(f"{stack.edge_url}/imp?offer_id=22&pid=1") as r:
                ids.append(r.headers["X-Aimp-Id"])
    times = [id_time(i) for i in ids]
    assert times == sorted(times)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    "query",
    ["offer_id=22&pid=1&imp_id=shown", "offer_id=22&pid=999999", "offer_id=999999&pid=1"],
    ids=["tracked", "affiliate_unknown", "offer_unknown"],
)
async def test_the_pixel_tells_a_stranger_nothing(stack: RunningStack, query: str) -> None:
    """Without the API key the answer is the same GIF whether the impression is tracked
    or rejected: no aimp_id, no reason. With the key, both."""
    url = f"{stack.edge_url}/imp?{query}"
    async with aiohttp.ClientSession() as session:
        async with session.get(url) as stranger:
            body = await stranger.read()
            assert (stranger.status, body) == (200, TRANSPARENT_GIF)
            shown = {h.lower() for h in stranger.headers}
            assert not shown & {"x-aimp-id", "x-imptrack-rejected"}, stranger.headers
        async with session.get(url, headers=stack.api_headers) as insider:
            assert insider.status == 200 and stack.id_seal.issued(insider.headers["X-Aimp-Id"])
            rejected = insider.headers.get("X-Imptrack-Rejected")
            assert rejected == (None if "imp_id=shown" in query else query_reason(query))
        async with session.get(url, headers={"API-Key": "a guess"}) as guesser:
            assert "X-Aimp-Id" not in guesser.headers


def query_reason(query: str) -> str:
    return "affiliate_unknown" if "pid=999999" in query else "offer_unknown"


def test_pixel_debug_shows_everyone_the_aimp_id_and_the_reason(
    stack: RunningStack, tmp_path: Path
) -> None:
    """PIXEL_DEBUG (a staging network where affiliates test their links): one more edge
    process on the same stack, with it on, shows both to a caller with no key."""
    with stack.extra_edge(tmp_path, PIXEL_DEBUG="1") as base:
        with urllib.request.urlopen(f"{base}/imp?offer_id=22&pid=1") as tracked:
            assert stack.id_seal.issued(tracked.headers["X-Aimp-Id"])
            assert tracked.headers["X-Imptrack-Rejected"] is None
        with urllib.request.urlopen(f"{base}/imp?offer_id=22&pid=999999") as rejected:
            assert stack.id_seal.issued(rejected.headers["X-Aimp-Id"])
            assert rejected.headers["X-Imptrack-Rejected"] == "affiliate_unknown"
