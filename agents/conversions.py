"""The conversions agent: every matched postback of one advertiser action meets the
earlier ones here (keyed by offer and ``action_id``). A new action becomes a
conversion, a new status updates it, a true repeat is refused as a duplicate
(:func:`app.attribution.conversions.decide`). Matches come in envelopes, one per
batch of the postbacks agent and partition (app.attribution.matches); one it cannot
read is set aside, never dropped. Each new revision of a conversion is
posted back to its affiliate (app.attribution.affiliate_postbacks) through the
forwarder.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import faust

from agents.sending import send_records
from agents.unreadable import set_aside
from app.attribution.affiliate_postbacks import affiliate_postback_tasks
from app.attribution.conversions import UPDATED, decide
from app.attribution.matches import read_matches
from app.attribution.replies import Reply
from app.catalog.current import CatalogView, catalog_current_at
from app.compat.table_writes import read_in_event_partition, write_in_event_partition
from app.events import kinds
from app.events.envelopes import UnreadableEnvelope
from app.events.records import Conversion, Postback, PostbackOutcome
from app.events.statuses import ConversionStatus
from app.events.topics import EventTopics
from app.metrics import pipeline as metrics

log = logging.getLogger("imptrack.conversions")

BATCH_SIZE = 500
BATCH_WINDOW_SECONDS = 0.01


def decide_conversions(
    app: faust.App, topics: EventTopics, table: Any, catalog: CatalogView, reply: Reply
) -> Any:
    """Declare the agent on ``app``."""

    async def decide_batches(stream: Any) -> None:
        # Affiliates' postback URLs come from the catalog: none is missed for a catalog
        # still loading.
        await catalog.ready.wait()
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
            sent = []
            decided: list[tuple[Postback, PostbackOutcome]] = []
            revisions: list[Conversion] = []
            for event in events:
                try:
                    matches = read_matches(event.value, event.key)
                except UnreadableEnvelope as exc:
                    sent.append(await set_aside(topics, event, str(exc), log))
                    continue
                # The envelope's partition is each of its actions' partition.
                for key, matched in matches:
                    state = read_in_event_partition(event, table, key)
                    new_state, outcome, conversion = decide(state, matched)
                    if new_state is not state:
                        write_in_event_partition(event, table, key, new_state)
                    if conversion is not None:
                        revisions.append(conversion)
                        if outcome.outcome == UPDATED and new_state is not state:
                            _log_status_change(conversion, outcome)
                    decided.append((matched.postback, outcome))
            sent.extend(await send_records(topics, kinds.CONVERSIONS, revisions))
            outcomes = [outcome for _, outcome in decided]
            metrics.took_in("conversions", len(decided))
            metrics.sent_out("conversions", len(outcomes) + len(revisions))
            metrics.postbacks_decided([(o.outcome, o.error_kind) for o in outcomes])
            sent.extend(await send_records(topics, kinds.POSTBACK_OUTCOMES, outcomes))
            # Answers only once the broker has the outcomes they report.
            await asyncio.gather(*sent)
            await reply(decided)
            # After the answers, which need no catalog: the advertiser waits for its
            # verdict, the affiliate's postback is not held up by a few milliseconds.
            # Before the next batch, so nothing acknowledged is left unsent.
            await _post_back_to_affiliates(topics, catalog, revisions)

    return app.agent(topics[kinds.POSTBACK_MATCHES], name="conversions")(decide_batches)


def _log_status_change(conversion: Conversion, outcome: PostbackOutcome) -> None:
    previous = outcome.previous_status
    log.info(
        "conversion %s of offer %d: status %s -> %s (action_id %r, postback %s)",
        conversion.conversion_id,
        conversion.offer_id,
        "?" if previous is None else ConversionStatus(previous).label,
        ConversionStatus(conversion.status).label,
        conversion.action_id,
        outcome.postback_id,
    )


async def _post_back_to_affiliates(
    topics: EventTopics, catalog: CatalogView, revisions: list[Conversion]
) -> None:
    """Send the affiliate postback tasks of each conversion revision, by the catalog
    in force when the postback that made it arrived (a replay sends the same ones,
    which the forwarder's schedule recognises)."""
    if not revisions:
        return
    await catalog_current_at(catalog, max(c.updated_ms for c in revisions), len(revisions))
    sent = []
    for conversion in revisions:
        in_force = catalog.catalog_at(conversion.updated_ms)
        for task in affiliate_postback_tasks(conversion, in_force):
            sent.append(
                await topics[kinds.AFFILIATE_POSTBACKS].send(key=task.conversion_id, value=task)
            )
    await asyncio.gather(*sent)
