"""Batches as the agents take them: judged by a current catalog, well formed."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from app.catalog.current import CatalogView, EventTime, catalog_current_for
from app.ids import envelope_key_ms, id_ms, is_valid_id


def id_time(id_field: str) -> EventTime:
    """When an event carrying its time-ordered ID in ``id_field`` was accepted."""

    def accepted(event: Any) -> int | None:
        value = getattr(event.value, id_field, None)
        return id_ms(value) if isinstance(value, str) and is_valid_id(value) else None

    return accepted


def envelope_time(event: Any) -> int | None:
    """When an envelope (keyed by its envelope key, app.ids.envelope_key) was opened:
    its impressions were accepted then or within the edge's few milliseconds after."""
    return envelope_key_ms(envelope_key(event))


def envelope_key(event: Any) -> str:
    key = event.key
    return key.decode("ascii", "replace") if isinstance(key, bytes) else str(key)


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
    stream: Any, catalog: CatalogView, accepted: EventTime, size: int, within: float
) -> AsyncIterator[list[Any]]:
    """The stream's batches (``size`` events or ``within`` seconds), each once
    ``catalog`` is loaded and holds every change made before the batch's newest event
    was accepted (``accepted``): an empty catalog would refuse every event as unknown,
    a stale one could judge by an offer's old terms."""
    await catalog.ready.wait()
    async for events in stream.take_events(size, within=within):
        await catalog_current_for(catalog, events, accepted)
        yield events
