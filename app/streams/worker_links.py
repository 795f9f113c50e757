"""The worker's side of linking clicks: its links server, and saying in Redis which
partitions it answers for (app.attribution.link_owners)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.attribution.click_links import PartitionLinks
from app.attribution.link_owners import ANNOUNCE_SECONDS, announce
from app.attribution.links_store import LinkedImpressionsStore
from app.events import kinds
from app.ids import IdSeal
from app.settings import Settings
from app.streams.links_server import LinksServer

log = logging.getLogger("imptrack.links")


def ready_partitions(app: faust.App) -> frozenset[int]:
    """The impressions partitions this worker holds with their table recovered."""
    if app.rebalancing or app.in_recovery:
        return frozenset()
    if not app.tables.recovery.completed.is_set():  # type: ignore[attr-defined]
        return frozenset()
    return frozenset(
        tp.partition
        for tp in app.assignor.assigned_actives()
        if tp.topic == kinds.IMPRESSIONS.topic
    )


def serve_links(
    app: faust.App, table: Any, seal: IdSeal, settings: Settings, redis: aioredis.Redis
) -> None:
    """Declare, on ``app``, the task that runs the links server over ``table``'s
    entries and index and announces the partitions it is ready for."""
    ready: frozenset[int] = frozenset()

    def reads_of(partition: int) -> PartitionLinks | None:
        # Read on the server's thread: ``ready`` is replaced whole, never changed.
        if partition not in ready or app.rebalancing:
            return None
        store = table.data
        if not isinstance(store, LinkedImpressionsStore):
            return None
        return store.links(partition)

    server = LinksServer(
        reads_of,
        seal,
        settings.worker_links_host,
        settings.instance_port(settings.worker_links_port),
    )

    async def links() -> None:
        nonlocal ready
        server.start()
        try:
            while True:
                ready = ready_partitions(app)
                try:
                    await announce(redis, ready, server.address)
                except (RedisError, OSError) as exc:
                    log.warning("could not announce the links partitions: %s", exc)
                await asyncio.sleep(ANNOUNCE_SECONDS)
        finally:
            server.stop()

    app.task(links)
