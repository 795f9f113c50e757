"""The conversions agent: every matched postback of one advertiser action meets the
earlier ones here (keyed by offer and ``action_id``). A new action becomes a
conversion, a new status updates it, a true repeat is refused as a duplicate.
Each new revision of a conversion is posted back to its affiliate
(app.attribution.affiliate_postbacks) through the forwarder.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from app.attribution.affiliate_postbacks import affiliate_postback_tasks
from app.attribution.conversions import UPDATED, decide
from app.attribution.params import STATUSES
from app.attribution.replies import reply
from app.compat.table_writes import read_in_event_partition, write_in_event_partition
from app.events.records import Conversion, Postback, PostbackOutcome
from app.events.topics import (
    affiliate_postbacks_topic,
    conversions_topic,
    postback_matches_topic,
    postback_outcomes_topic,
)
from app.streams.catalog import catalog, catalog_current_at
from app.streams.faust_app import app
from tables.conversions import conversions_table

log = logging.getLogger("imptrack.conversions")

BATCH_SIZE = 500
BATCH_WINDOW_SECONDS = 0.01


@app.agent(postback_matches_topic)
async def decide_conversions(stream: Any) -> None:
    # Affiliates' postback URLs come from the catalog: none is missed for a catalog
    # still loading.
    await catalog.ready.wait()
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
        sent = []
        decided: list[tuple[Postback, PostbackOutcome]] = []
        revisions: list[Conversion] = []
        for event in events:
            matched = event.value
            state = read_in_event_partition(event, conversions_table, event.key)
            new_state, outcome, conversion = decide(state, matched)
            if new_state is not state:
                write_in_event_partition(event, conversions_table, event.key, new_state)
            if conversion is not None:
                sent.append(
                    await conversions_topic.send(key=conversion.conversion_id, value=conversion)
                )
                revisions.append(conversion)
                if outcome.outcome == UPDATED and new_state is not state:
                    assert outcome.previous_status is not None
                    log.info(
                        "conversion %s of offer %d: status %s -> %s (action_id %r, postback %s)",
                        conversion.conversion_id,
                        conversion.offer_id,
                        STATUSES[outcome.previous_status],
                        STATUSES[conversion.status],
                        conversion.action_id,
                        outcome.postback_id,
                    )
            sent.append(await postback_outcomes_topic.send(key=outcome.postback_id, value=outcome))
            decided.append((matched.postback, outcome))
        # Answers only once the broker has the outcomes they report.
        await asyncio.gather(*sent)
        await reply(decided)
        # After the answers, which need no catalog: the advertiser waits for its
        # verdict, the affiliate's postback is not held up by a few milliseconds.
        # Before the next batch, so nothing acknowledged is left unsent.
        await post_back_to_affiliates(revisions)


async def post_back_to_affiliates(revisions: list[Conversion]) -> None:
    """Send the affiliate postback tasks of each conversion revision, by the catalog
    in force when the postback that made it arrived (a replay sends the same ones,
    which the forwarder's schedule recognises)."""
    if not revisions:
        return
    await catalog_current_at(max(c.updated_ms for c in revisions), len(revisions))
    sent = []
    for conversion in revisions:
        in_force = catalog.catalog_at(conversion.updated_ms)
        for task in affiliate_postback_tasks(conversion, in_force):
            sent.append(await affiliate_postbacks_topic.send(key=task.conversion_id, value=task))
    await asyncio.gather(*sent)
