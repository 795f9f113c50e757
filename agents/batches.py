"""Batches as the agents take them: judged by a current catalog, well formed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from app.catalog.current import CatalogView, catalog_current_for
from app.ids import is_valid_id


def well_formed(events: list[Any], id_field: str, what: str, log: logging.Logger) -> list[Any]:
    """``events`` whose ``id_field`` is a well-formed ID. Only imptrack's own processes
    write these topics; anything else is not ours to count, so it is logged (with
    where it is) and skipped, and the partition goes on."""
    kept = []
    for event in events:
        value = getattr(event.value, id_field, None)
        if isinstance(value, str) and is_valid_id(value):
            kept.append(event)
        else:
            log.error("skipped %s with a malformed %s at %s", what, id_field, event.message)
    return kept


async def current_batches(
    stream: Any, catalog: CatalogView, id_field: str, size: int, within: float
) -> AsyncIterator[list[Any]]:
    """The stream's batches (``size`` events or ``within`` seconds), each once
    ``catalog`` is loaded and holds every change made before the batch's newest event
    was accepted (its time-ordered ``id_field``): an empty catalog would refuse every
    event as unknown, a stale one could judge by an offer's old terms."""
    await catalog.ready.wait()
    async for events in stream.take_events(size, within=within):
        await catalog_current_for(catalog, events, id_field)
        yield events
