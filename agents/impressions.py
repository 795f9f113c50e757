"""The impressions agent: judges each accepted impression against the catalog, records
the eligible ones (with what they earn at the offer's CPM price), emits every
impression for export (recorded or rejected) and a forward task for each recorded
one whose offer has an impressions destination URL, and indexes recorded impressions
in Redis for linking clicks to them."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from app.attribution.click_links import index_impressions
from app.attribution.payments import impression_earning
from app.catalog.eligibility import rejection_reason
from app.compat.table_writes import write_in_event_partition
from app.events.records import Impression, RejectedImpression
from app.events.topics import (
    forward_tasks_topic,
    impressions_topic,
    recorded_impressions_topic,
    rejected_impressions_topic,
)
from app.forwarding.plan import forward_task
from app.ids import id_ms, is_valid_id
from app.ops.redis_retry import until_redis_answers
from app.streams.catalog import catalog, catalog_current_for
from app.streams.faust_app import app
from app.streams.redis import worker_redis
from tables.impressions import impressions_input, impressions_table

log = logging.getLogger("imptrack.impressions")

BATCH_SIZE = 1000
BATCH_WINDOW_SECONDS = 0.05


@app.agent(impressions_topic)
async def record_impressions(stream: Any) -> None:
    # Nothing is judged before the whole catalog is loaded: an empty catalog would
    # reject every impression as unknown.
    await catalog.ready.wait()
    # Replays after a crash record and emit again: the table write is keyed by
    # aimp_id and the exporter deduplicates by aimp_id, so both are idempotent.
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
        await catalog_current_for(events, "aimp_id")
        sent = []
        # Recorded impressions and their offer's view-through window, for the index
        # clicks are linked through (app.attribution.click_links).
        recorded: list[tuple[Impression, int]] = []
        for event in events:
            impression = event.value
            if not is_valid_id(impression.aimp_id):
                # Only the edge writes here; anything else is not ours to count.
                log.error("skipped an impression with a malformed aimp_id at %s", event.message)
                continue
            # Judged by the catalog in force when the edge accepted it, so lag and
            # replays do not change the verdict (see app.catalog.history).
            in_force = catalog.catalog_at(id_ms(impression.aimp_id))
            reason = rejection_reason(
                in_force, impression.offer_id, impression.pid, impression=True
            )
            if reason is None:
                offer = in_force.offers[impression.offer_id]
                # The CPM price in force at the impression's time, like the verdict.
                earning = impression_earning(offer, impression.pid)
                recorded_impression = impression.derive(
                    revenue=str(earning.revenue),
                    payout=str(earning.payout),
                    currency=earning.currency,
                    advertiser_id=offer.advertiser_id,
                )
                write_in_event_partition(event, impressions_table, impression.aimp_id, impression)
                sent.append(
                    await recorded_impressions_topic.send(
                        key=impression.aimp_id, value=recorded_impression
                    )
                )
                recorded.append((impression, offer.view_through_window))
                forward = forward_task(offer, impression)
                if forward is not None:
                    sent.append(
                        await forward_tasks_topic.send(key=impression.aimp_id, value=forward)
                    )
            else:
                judged = in_force.offers.get(impression.offer_id)
                rejected = RejectedImpression(
                    aimp_id=impression.aimp_id,
                    offer_id=impression.offer_id,
                    pid=impression.pid,
                    reason=reason.value,
                    imp_id=impression.imp_id,
                    advertiser_id=None if judged is None else judged.advertiser_id,
                )
                sent.append(
                    await rejected_impressions_topic.send(key=impression.aimp_id, value=rejected)
                )
        # Postbacks naming these impressions may now be judged (app/streams/table_progress.py).
        impressions_input.processed(events)
        # Not acknowledged until indexed: a click must be able to find it.
        await until_redis_answers(
            # Now is read at each try: the keys live for what is left of the window.
            lambda batch=recorded: index_impressions(  # type: ignore[misc]
                worker_redis(), batch, time.time_ns() // 1_000_000
            ),
            "index impressions",
            log,
        )
        # The batch's events are acknowledged (and may be committed) once the loop
        # takes the next batch; everything they produced must be on the broker first.
        await asyncio.gather(*sent)
