"""The edge's side of linking a click to its impression: ask the worker holding the
partition of the ``aimp_id`` or ``imp_id`` the click names
(app.attribution.click_links, app.streams.links_server).

The workers' addresses come from Redis (app.attribution.link_owners), read every
:data:`ANNOUNCE_SECONDS` by a task of each edge process, never on a click's path. A
click waits for its link at most :data:`LINK_TIMEOUT` seconds, then is tracked
without one ("unavailable"), as when no worker answers for the partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.attribution.click_links import (
    BY_AIMP_ID,
    BY_IMP_ID,
    NOT_FOUND,
    UNAVAILABLE,
    Link,
    imp_id_partition,
)
from app.attribution.link_owners import ANNOUNCE_SECONDS, owners
from app.ids import id_ms

log = logging.getLogger("imptrack.edge")

LINK_TIMEOUT = 0.25


class LinkFinder:
    def __init__(self, redis: aioredis.Redis, partitions: int) -> None:
        self._redis = redis
        self._partitions = partitions
        self._owners: dict[int, str] = {}
        self._session: aiohttp.ClientSession | None = None
        self._refresh: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=LINK_TIMEOUT),
            connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=None),
        )
        await self._read_owners()
        self._refresh = asyncio.create_task(self._keep_reading(), name="link-owners")

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        if self._session is not None:
            await self._session.close()

    async def _read_owners(self) -> None:
        try:
            self._owners = await owners(self._redis)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not read which worker links each partition: %s", exc)

    async def _keep_reading(self) -> None:
        while True:
            await asyncio.sleep(ANNOUNCE_SECONDS)
            await self._read_owners()

    async def find(
        self,
        offer_id: int,
        pid: int,
        window_seconds: int,
        now_ms: int,
        aimp_id: tuple[str, int] | None,
        imp_id: str | None,
    ) -> Link:
        """The impression a click on ``offer_id`` by ``pid`` followed, within the
        offer's view-through window: by ``aimp_id`` (the ID and its partition) when
        it names one of this offer and affiliate, else by ``imp_id``."""
        asked = []
        if aimp_id is not None:
            asked.append(self._ask(aimp_id[1], offer_id, pid, aimp_id=aimp_id[0]))
        if imp_id:
            partition = imp_id_partition(offer_id, pid, imp_id, self._partitions)
            asked.append(self._ask(partition, offer_id, pid, imp_id=imp_id))
        if not asked:
            return Link(NOT_FOUND)
        answers = await asyncio.gather(*asked)
        # The aimp_id's first; an "unavailable" for one does not hide the other's link.
        for answer in answers:
            if (
                answer.aimp_id is not None
                and id_ms(answer.aimp_id) + window_seconds * 1000 >= now_ms
            ):
                return answer
        return next((a for a in answers if a.how == UNAVAILABLE), Link(NOT_FOUND))

    async def _ask(self, partition: int, offer_id: int, pid: int, **named: str) -> Link:
        url = self._owners.get(partition)
        if url is None or self._session is None:
            return Link(UNAVAILABLE)
        query: dict[str, Any] = {"partition": partition, "offer_id": offer_id, "pid": pid, **named}
        try:
            async with self._session.get(f"{url}/links", params=query) as response:
                if response.status != 200:
                    return Link(UNAVAILABLE)
                body = await response.json()
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return Link(UNAVAILABLE)
        if body.get("how") not in (BY_AIMP_ID, BY_IMP_ID):
            return Link(NOT_FOUND)
        return Link(body["how"], body.get("aimp_id"), body.get("imp_id"))
