"""Waiting, in a test, until the worker can link clicks to an impression: its links
server (app/streams/links_server.py) answers for it."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import redis.asyncio as aioredis

from app.attribution.click_links import NOT_FOUND, imp_id_partition
from app.attribution.link_owners import owners
from tests.integration.conftest import RunningStack


async def linked(
    stack: RunningStack,
    offer_id: int,
    pid: int,
    *,
    aimp_id: str | None = None,
    imp_id: str | None = None,
    seconds: float = 30,
) -> dict[str, str | None]:
    """The links server's answer once it links ``aimp_id`` (or else ``imp_id``)."""
    partitions = stack.settings.topic_partitions
    if aimp_id is not None:
        partition = (stack.id_seal.partition(aimp_id) or 0) % partitions
    else:
        assert imp_id is not None
        partition = imp_id_partition(offer_id, pid, imp_id, partitions)
    query = {"partition": partition, "offer_id": offer_id, "pid": pid}
    query |= {k: v for k, v in (("aimp_id", aimp_id), ("imp_id", imp_id)) if v is not None}
    client = aioredis.from_url(stack.settings.redis)
    deadline = time.monotonic() + seconds
    body: dict[str, str | None] = {}
    try:
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                url = (await owners(client)).get(partition)
                if url is not None:
                    async with session.get(f"{url}/links", params=query) as response:
                        if response.status == 200:
                            body = await response.json()
                            if body["how"] != NOT_FOUND:
                                return body
                await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise AssertionError(f"{aimp_id or imp_id} was never linked (last answer {body})")
