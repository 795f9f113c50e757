"""Which worker answers for each partition's links index: one Redis hash.

A worker holding a partition of the ``impressions`` table, its recovery done,
writes ``partition → host:port of its links server`` (app/streams/links_server.py)
every :data:`ANNOUNCE_SECONDS`; the edge reads the whole hash as often and asks the
worker of the partition a click names. The hash holds one field per partition (at most
256, app.ids): what Redis keeps of the index does not grow with traffic. A
partition that moved is written over by its new worker; until then a click asking
the old one is told the partition is not held there, and is tracked without a link
("unavailable").
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as aioredis

from app.redis_replies import reply_text

OWNERS_KEY = "imptrack:links:owners"
ANNOUNCE_SECONDS = 0.5


async def announce(client: aioredis.Redis, partitions: Iterable[int], address: str) -> None:
    """Say that the links server at ``address`` (host:port) answers for ``partitions``."""
    fields: list[str | int] = []
    for partition in partitions:
        fields += (partition, address)
    if fields:
        await client.hset(OWNERS_KEY, items=fields)


async def owners(client: aioredis.Redis) -> dict[int, str]:
    """Each partition's links server (host:port), as last announced."""
    found = await client.hgetall(OWNERS_KEY)
    return {int(reply_text(p)): reply_text(address) for p, address in found.items()}
