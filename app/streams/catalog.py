"""The catalog as every worker holds it: the whole ``catalog`` topic, in memory.

Not a Faust GlobalTable: the edge (which is not a Faust app) must hold the same
catalog the same way, so both run :class:`~app.catalog.follower.CatalogFollower`
(see docs/ARCHITECTURE.md, "The catalog").
"""

from __future__ import annotations

import logging
from typing import Any

from app.catalog.follower import CatalogFollower
from app.ids import id_ms, is_valid_id
from app.settings import settings
from app.streams.faust_app import app

log = logging.getLogger("imptrack.catalog")

# A short fetch wait: each batch of impressions and postbacks waits for proof that its
# catalog is current (catalog_current_for), which takes up to two fetch waits.
catalog = CatalogFollower(settings().broker, fetch_wait_ms=settings().worker_catalog_fetch_wait_ms)


@app.task  # type: ignore[untyped-decorator]
async def follow_catalog() -> None:
    await catalog.run()


CATALOG_WAIT_SECONDS = 5.0


async def catalog_current_for(events: list[Any], id_field: str) -> None:
    """Wait until this worker's catalog has every change made before the newest
    event of the batch was accepted (by its time-ordered ID)."""
    ids = [getattr(e.value, id_field) for e in events]
    newest = max((id_ms(i) for i in ids if isinstance(i, str) and is_valid_id(i)), default=0)
    await catalog_current_at(newest, len(events))


async def catalog_current_at(moment_ms: int, events: int) -> None:
    """Wait until this worker's catalog has every change made before ``moment_ms``,
    to judge ``events`` events of that time or earlier."""
    if not await catalog.wait_current(moment_ms, CATALOG_WAIT_SECONDS):
        log.warning(
            "judging %d events with a catalog not known to be current (the catalog "
            "follower has not caught up in %.0f s)",
            events,
            CATALOG_WAIT_SECONDS,
        )
