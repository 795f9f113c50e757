"""Waiting, in a test, until the worker can link clicks to an impression: its links
server (app/streams/links_server.py) answers for it, asked as the edge asks."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from app.attribution.click_links import Link, imp_id_partition
from app.attribution.link_owners import owners
from app.attribution.links_wire import ask, read_answer
from tests.integration.conftest import RunningStack


async def linked(
    stack: RunningStack,
    offer_id: int,
    pid: int,
    *,
    aimp_id: str | None = None,
    imp_id: str | None = None,
    seconds: float = 30,
) -> Link:
    """The links server's answer once it links ``aimp_id`` (or else ``imp_id``)."""
    partitions = stack.settings.topic_partitions
    if aimp_id is not None:
        partition = (stack.id_seal.partition(aimp_id) or 0) % partitions
    else:
        assert imp_id is not None
        partition = imp_id_partition(offer_id, pid, imp_id, partitions)
    client = aioredis.from_url(stack.settings.redis)
    deadline = time.monotonic() + seconds
    answer: Link | str | None = None
    try:
        while time.monotonic() < deadline:
            address = (await owners(client)).get(partition)
            if address is not None:
                answer = await _ask(address, ask(0, partition, offer_id, pid, aimp_id, imp_id))
                if isinstance(answer, Link) and answer.aimp_id is not None:
                    return answer
            await asyncio.sleep(0.05)
    finally:
        await client.aclose()
    raise AssertionError(f"{aimp_id or imp_id} was never linked (last answer {answer})")


async def _ask(address: str, line: bytes) -> Link | str:
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(line)
        _, answer = read_answer(await reader.readline())
        return answer
    finally:
        writer.close()
