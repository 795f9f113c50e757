"""Sending pixels and clicks to the edge under test, over real HTTP."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import aiohttp

if TYPE_CHECKING:
    from tests.integration.conftest import RunningStack


@dataclass
class PixelRun:
    accepted: dict[str, dict[str, str]] = field(default_factory=dict)  # aimp_id -> params
    refused: int = 0
    # aimp_id -> the edge's X-Imptrack-Rejected header ("" when it had none)
    edge_verdicts: dict[str, str] = field(default_factory=dict)


async def send_pixels(
    stack: RunningStack,
    params: list[dict[str, str]],
    concurrency: int = 32,
    run: PixelRun | None = None,
    fresh_connections: bool = False,
) -> PixelRun:
    """Send one pixel per params dict; record the aimp_id of every GIF answered. They
    are sent with the API key, as the network's own people test links: the pixel
    then shows its aimp_id and its rejection reason, if any."""
    run = run or PixelRun()
    queue: asyncio.Queue[dict[str, str]] = asyncio.Queue()
    for p in params:
        queue.put_nowait(p)
    connector = aiohttp.TCPConnector(force_close=fresh_connections, limit=concurrency)

    async def client(session: aiohttp.ClientSession) -> None:
        while not queue.empty():
            p = queue.get_nowait()
            try:
                async with session.get(f"{stack.edge_url}/imp", params=p) as response:
                    body = await response.read()
                    if response.status == 200 and body.startswith(b"GIF89a"):
                        aimp_id = response.headers["X-Aimp-Id"]
                        run.accepted[aimp_id] = p
                        run.edge_verdicts[aimp_id] = response.headers.get("X-Imptrack-Rejected", "")
                    else:
                        run.refused += 1
            except aiohttp.ClientError:
                run.refused += 1

    async with aiohttp.ClientSession(connector=connector, headers=stack.api_headers) as session:
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
    return run


def pixel_params(count: int, offer_id: int = 1, prefix: str = "t") -> list[dict[str, str]]:
    return [
        {
            "offer_id": str(offer_id),
            "pid": str(100 + n % 7),
            "imp_id": f"{prefix}-{n}",
            "sub1": f"s1-{n}",
            "sub8": f"s8 {n}&x=y",
        }
        for n in range(count)
    ]


async def send_clicks(
    session: aiohttp.ClientSession, stack: RunningStack, offer_id: int, pid: int, count: int
) -> list[str]:
    """``count`` clicks on the offer's tracking link, each answered 302; their clickids."""
    clickids = []
    for _ in range(count):
        url = f"{stack.edge_url}/click?offer_id={offer_id}&pid={pid}"
        async with session.get(url, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
            clickids.append(response.headers["X-Clickid"])
    return clickids
