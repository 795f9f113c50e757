"""The clicks agent: keeps each click the edge accepted where postbacks look for it.

The edge has already judged the click and linked it to its impression (it had to,
to fill the tracking URL), and the exporter reads the ``clicks`` topic itself.
"""

from __future__ import annotations

import logging
from typing import Any

import faust

from agents.batches import well_formed
from agents.table_progress import TableInput
from app.compat.table_writes import write_in_event_partition
from app.events import kinds
from app.events.topics import EventTopics
from app.metrics import pipeline as metrics

log = logging.getLogger("imptrack.clicks")

BATCH_SIZE = 1000
BATCH_WINDOW_SECONDS = 0.05


def record_clicks(app: faust.App, topics: EventTopics, table: Any, table_input: TableInput) -> Any:
    """Declare the agent on ``app``."""

    async def record(stream: Any) -> None:
        # Replays after a crash write again: the table is keyed by clickid.
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
            kept = well_formed(events, "clickid", "a click", log)
            for event in kept:
                write_in_event_partition(event, table, event.value.clickid, event.value)
            table_input.processed(events)
            metrics.took_in("clicks", len(kept))

    return app.agent(topics[kinds.CLICKS], name="clicks")(record)
