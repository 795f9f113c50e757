"""The edge's side of linking a click to its impression: ask the worker holding the
partition of the ``aimp_id`` or ``imp_id`` the click names
(app.attribution.click_links), over one connection per worker kept open, in the
line protocol of app.attribution.links_wire.

The workers' addresses come from Redis (app.attribution.link_owners), read every
:data:`ANNOUNCE_SECONDS` by a task of each edge process, never on a click's path. A
click waits for its link at most :data:`LINK_TIMEOUT` seconds, then is tracked
without one ("unavailable"), as when no worker answers for the partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from typing import cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.attribution.click_links import NOT_FOUND, UNAVAILABLE, Link, imp_id_partition
from app.attribution.link_owners import ANNOUNCE_SECONDS, owners
from app.attribution.links_wire import ask, complete_lines, read_answer
from app.ids import id_ms

log = logging.getLogger("imptrack.edge")

LINK_TIMEOUT = 0.25
RECONNECT_SECONDS = 1.0
"""After a worker refused a connection, clicks asking it are tracked without a link
for this long before it is tried again, rather than each trying and waiting."""


class _Worker(asyncio.Protocol):
    """The connection to one worker's links server, with the asks awaiting answers."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = b""
        self._seqs = itertools.count()
        self._waiting: dict[int, tuple[asyncio.Future[Link | str], asyncio.TimerHandle]] = {}

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport instances, but are ones.
        self.transport = cast(asyncio.Transport, transport)

    @property
    def open(self) -> bool:
        return self.transport is not None and not self.transport.is_closing()

    def ask(
        self, partition: int, offer_id: int, pid: int, **named: str | None
    ) -> asyncio.Future[Link | str]:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        seq = next(self._seqs)
        answer: asyncio.Future[Link | str] = loop.create_future()
        timer = loop.call_later(LINK_TIMEOUT, self._settle, seq, "no answer in time")
        self._waiting[seq] = (answer, timer)
        self.transport.write(
            ask(seq, partition, offer_id, pid, named.get("aimp_id"), named.get("imp_id"))
        )
        return answer

    def _settle(self, seq: int | None, result: Link | str) -> None:
        waiting = self._waiting.pop(seq, None) if seq is not None else None
        if waiting is not None:
            answer, timer = waiting
            timer.cancel()
            if not answer.done():
                answer.set_result(result)

    def data_received(self, data: bytes) -> None:
        lines, self._buffer = complete_lines(self._buffer, data)
        for line in lines:
            try:
                seq, result = read_answer(line)
            except (ValueError, IndexError, TypeError):
                log.warning("a links server sent an unreadable line: %r", line[:200])
                continue
            self._settle(seq, result)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        for seq in list(self._waiting):
            self._settle(seq, f"connection lost: {exc or 'closed'}")


class LinkFinder:
    def __init__(self, redis: aioredis.Redis, partitions: int) -> None:
        self._redis = redis
        self._partitions = partitions
        self._owners: dict[int, str] = {}
        self._workers: dict[str, _Worker] = {}
        self._connecting: dict[str, asyncio.Task[_Worker | None]] = {}
        self._refused_at: dict[str, float] = {}
        self._refresh: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._read_owners()
        self._refresh = asyncio.create_task(self._keep_reading(), name="link-owners")

    async def stop(self) -> None:
        if self._refresh is not None:
            self._refresh.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresh
        for worker in self._workers.values():
            if worker.transport is not None:
                worker.transport.close()

    async def _read_owners(self) -> None:
        try:
            self._owners = await owners(self._redis)
        except (RedisError, OSError, TimeoutError) as exc:
            log.warning("could not read which worker links each partition: %s", exc)

    async def _keep_reading(self) -> None:
        while True:
            await asyncio.sleep(ANNOUNCE_SECONDS)
            await self._read_owners()

    async def _worker(self, address: str) -> _Worker | None:
        worker = self._workers.get(address)
        if worker is not None and worker.open:
            return worker
        if time.monotonic() - self._refused_at.get(address, -RECONNECT_SECONDS) < RECONNECT_SECONDS:
            return None
        connecting = self._connecting.get(address)
        if connecting is None:
            connecting = asyncio.create_task(self._connect(address))
            self._connecting[address] = connecting
            connecting.add_done_callback(lambda _: self._connecting.pop(address, None))
        return await asyncio.shield(connecting)

    async def _connect(self, address: str) -> _Worker | None:
        host, _, port = address.rpartition(":")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(LINK_TIMEOUT):
                _, worker = await loop.create_connection(_Worker, host, int(port))
        except (OSError, TimeoutError, ValueError) as exc:
            log.warning("the links server at %s did not take a connection: %s", address, exc)
            self._refused_at[address] = time.monotonic()
            return None
        self._workers[address] = worker
        return worker

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
        address = self._owners.get(partition)
        worker = None if address is None else await self._worker(address)
        if worker is None:
            return Link(UNAVAILABLE)
        result = await worker.ask(partition, offer_id, pid, **named)
        if isinstance(result, str):
            log.debug("no link from %s for partition %d: %s", address, partition, result)
            return Link(UNAVAILABLE)
        return result if result.aimp_id is not None else Link(NOT_FOUND)
