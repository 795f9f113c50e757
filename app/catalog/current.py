"""The catalog as a Faust process holds it: the whole ``catalog`` topic, in memory.

Not a Faust GlobalTable: the edge (which is not a Faust app) must hold the same
catalog the same way, so both run :class:`~app.catalog.follower.CatalogFollower`
(see docs/ARCHITECTURE.md, "The catalog"). The agents see it through
:class:`CatalogView`, which a test can stand in for with a fixed catalog.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, Protocol

from app.catalog.model import Catalog

log = logging.getLogger("imptrack.catalog")

CATALOG_WAIT_SECONDS = 5.0


class CatalogView(Protocol):
    """What the agents need of the catalog: when it is loaded, the catalog in force
    at a moment, and a wait until it holds every change made before a moment."""

    @property
    def ready(self) -> asyncio.Event: ...

    def catalog_at(self, moment_ms: int) -> Catalog: ...

    async def wait_current(self, moment_ms: int, within: float) -> bool: ...


EventTime = Callable[[Any], "int | None"]
"""When an event (a Faust event) was accepted by the edge, in ms; None if it does not
say (a malformed one)."""


async def catalog_current_for(catalog: CatalogView, events: list[Any], accepted: EventTime) -> None:
    """Wait until ``catalog`` has every change made before the newest event of the
    batch was accepted (by its time-ordered ID or envelope key)."""
    newest = max((ms for e in events if (ms := accepted(e)) is not None), default=0)
    await catalog_current_at(catalog, newest, len(events))


async def catalog_current_at(catalog: CatalogView, moment_ms: int, events: int) -> None:
    """Wait until ``catalog`` has every change made before ``moment_ms``, to judge
    ``events`` events of that time or earlier."""
    if not await catalog.wait_current(moment_ms, CATALOG_WAIT_SECONDS):
        log.warning(
            "judging %d events with a catalog not known to be current (the catalog "
            "follower has not caught up in %.0f s)",
            events,
            CATALOG_WAIT_SECONDS,
        )
