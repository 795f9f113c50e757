"""The impressions agent: judges each envelope of impressions the edge accepted
against the catalog (:func:`app.attribution.impressions.judge_envelope`), records it
in the ``impressions`` table (one entry per envelope: its recorded impressions),
emits one envelope of recorded, one of rejected impressions and one of forward tasks
for it (each only if not empty; the forward tasks name the envelope they were made
from in their headers), and indexes the recorded impressions for linking
clicks to them. Its outputs stay on the envelope's partition, under its key."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from agents.batches import current_batches, envelope_key, envelope_time
from agents.table_progress import TableInput
from agents.unreadable import set_aside
from app.attribution.impressions import judge_envelope, unreadable_impressions
from app.catalog.current import CatalogView
from app.compat.table_writes import write_in_event_partition
from app.events import kinds
from app.events.envelopes import Envelope, UnreadableEnvelope
from app.events.provenance import source_headers
from app.events.topics import EventTopics
from app.metrics import pipeline as metrics

log = logging.getLogger("imptrack.impressions")

BATCH_SIZE = 100
"""Envelopes a batch (up to 512 impressions each)."""
BATCH_WINDOW_SECONDS = 0.05

_ACCEPTED = kinds.IMPRESSIONS.enveloped


def record_impressions(
    app: faust.App,
    topics: EventTopics,
    table: Any,
    table_input: TableInput,
    catalog: CatalogView,
) -> Any:
    """Declare the agent on ``app``."""

    async def record(stream: Any) -> None:
        # Replays after a crash record and emit again: the table write is keyed by
        # the envelope and the exporter deduplicates by aimp_id, so both are idempotent.
        batches = current_batches(stream, catalog, envelope_time, BATCH_SIZE, BATCH_WINDOW_SECONDS)
        async for events in batches:
            sent = []
            for event in events:
                key = envelope_key(event)
                readable = _readable(event, key)
                if isinstance(readable, str):
                    sent.append(await set_aside(topics, event, readable, log))
                    continue
                envelope, accepted_ms = readable
                verdicts = judge_envelope(catalog.catalog_at(accepted_ms), envelope)
                metrics.envelope_judged("impressions", len(envelope), verdicts.counts)
                partition = event.message.partition
                if verdicts.recorded is not None:
                    write_in_event_partition(event, table, key, verdicts.recorded)
                    sent.append(
                        await _send(
                            topics[kinds.RECORDED_IMPRESSIONS], key, verdicts.recorded, partition
                        )
                    )
                if verdicts.rejected is not None:
                    sent.append(
                        await _send(
                            topics[kinds.REJECTED_IMPRESSIONS], key, verdicts.rejected, partition
                        )
                    )
                if verdicts.forward is not None:
                    # Named by the envelope it was made from: the forwarder recognises
                    # a replay of it by that (app.forwarding.schedule).
                    source = source_headers(event.message.topic, partition, event.message.offset)
                    sent.append(
                        await _send(
                            topics[kinds.FORWARD_TASKS], key, verdicts.forward, partition, source
                        )
                    )
            # Postbacks naming these impressions may now be judged (agents/table_progress.py).
            table_input.processed(events)
            # The batch's events are acknowledged (and may be committed) once the loop
            # takes the next batch; everything they produced must be on the broker first.
            await asyncio.gather(*sent)

    return app.agent(topics[kinds.IMPRESSIONS], name="impressions")(record)


def _readable(event: Any, key: str) -> tuple[Envelope, int] | str:
    """The event's envelope and when it was opened, or why it cannot be judged."""
    try:
        envelope = _ACCEPTED.decode(event.value)
    except UnreadableEnvelope as exc:
        return str(exc)
    problem = unreadable_impressions(envelope)
    if problem is not None:
        return problem
    accepted_ms = envelope_time(event)
    if accepted_ms is None:
        return f"its key {key!r} is not an envelope key"
    return envelope, accepted_ms


async def _send(topic: Any, key: str, value: bytes, partition: int, headers: Any = None) -> Any:
    return await topic.send(key=key, value=value, partition=partition, headers=headers)
