"""The impressions agent: records each accepted impression and emits it for export."""

from __future__ import annotations

from typing import Any

from app.faust_app import app
from app.topics import impressions_topic, recorded_impressions_topic
from tables.batches import write_in_event_partition
from tables.impressions import impressions_table

BATCH_SIZE = 1000
BATCH_WINDOW_SECONDS = 0.05


@app.agent(impressions_topic)
async def record_impressions(stream: Any) -> None:
    # Replays after a crash record and emit again: the table write is keyed by
    # aimp_id and the exporter deduplicates by aimp_id, so both are idempotent.
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
        for event in events:
            impression = event.value
            write_in_event_partition(event, impressions_table, impression.aimp_id, impression)
            await recorded_impressions_topic.send(key=impression.aimp_id, value=impression)
