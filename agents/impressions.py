"""The impressions agent: judges each accepted impression against the catalog
(:func:`app.attribution.impressions.judge_impression`), records the eligible ones
in the ``impressions`` table, emits every impression for export (recorded or
rejected) and a forward task for each recorded one whose offer has an impressions
destination URL, and indexes recorded impressions for linking clicks to them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from agents.batches import current_batches, well_formed
from agents.table_progress import TableInput
from app.attribution.impressions import Recorded, judge_impression
from app.catalog.current import CatalogView
from app.compat.table_writes import write_in_event_partition
from app.events import kinds
from app.events.records import Impression
from app.events.topics import EventTopics
from app.ids import id_ms

log = logging.getLogger("imptrack.impressions")

BATCH_SIZE = 1000
BATCH_WINDOW_SECONDS = 0.05

IndexImpressions = Callable[[list[tuple[Impression, int]]], Awaitable[None]]
"""Indexes recorded impressions (each with its offer's view-through window) where
clicks are linked to them (app.attribution.click_links); returns once indexed."""


def record_impressions(
    app: faust.App,
    topics: EventTopics,
    table: Any,
    table_input: TableInput,
    catalog: CatalogView,
    index: IndexImpressions,
) -> Any:
    """Declare the agent on ``app``."""

    async def record(stream: Any) -> None:
        # Replays after a crash record and emit again: the table write is keyed by
        # aimp_id and the exporter deduplicates by aimp_id, so both are idempotent.
        batches = current_batches(stream, catalog, "aimp_id", BATCH_SIZE, BATCH_WINDOW_SECONDS)
        async for events in batches:
            sent = []
            recorded: list[tuple[Impression, int]] = []
            for event in well_formed(events, "aimp_id", "an impression", log):
                impression = event.value
                judged = judge_impression(catalog.catalog_at(id_ms(impression.aimp_id)), impression)
                key = impression.aimp_id
                if isinstance(judged, Recorded):
                    write_in_event_partition(event, table, key, impression)
                    sent.append(
                        await topics[kinds.RECORDED_IMPRESSIONS].send(key=key, value=judged.earning)
                    )
                    recorded.append((impression, judged.view_through_window))
                    if judged.forward is not None:
                        sent.append(
                            await topics[kinds.FORWARD_TASKS].send(key=key, value=judged.forward)
                        )
                else:
                    sent.append(
                        await topics[kinds.REJECTED_IMPRESSIONS].send(key=key, value=judged)
                    )
            # Postbacks naming these impressions may now be judged (agents/table_progress.py).
            table_input.processed(events)
            # Not acknowledged until indexed: a click must be able to find it.
            await index(recorded)
            # The batch's events are acknowledged (and may be committed) once the loop
            # takes the next batch; everything they produced must be on the broker first.
            await asyncio.gather(*sent)

    return app.agent(topics[kinds.IMPRESSIONS], name="impressions")(record)
