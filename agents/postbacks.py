"""The postbacks agent: reads each postback the edge stored, finds the click or
impression it names, and either refuses it (the outcome goes to the log and back to
the edge) or passes the conversion it makes to the conversions agent
(app.attribution.postback_judgement decides), in one envelope per batch and
partition (app.attribution.matches).

Postbacks are on the partition of the ID they name (app.edge.placement), so this
partition of the ``clicks`` and ``impressions`` tables is the one that holds it, in
this worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust

from agents.batches import current_batches, id_time, well_formed
from agents.sending import send_records
from agents.table_progress import TableInput
from app.attribution.impressions import recorded_impression
from app.attribution.matches import match_envelopes
from app.attribution.params import PostbackRequest
from app.attribution.postback_judgement import judge_postback, read_postback
from app.attribution.replies import Reply
from app.catalog.current import CatalogView
from app.compat.table_writes import read_in_event_partition
from app.events import kinds
from app.events.envelopes import UnreadableEnvelope
from app.events.records import Click, Impression, MatchedPostback, Postback, PostbackOutcome
from app.events.topics import EventTopics
from app.ids import IdSeal, id_ms
from app.metrics import pipeline as metrics

log = logging.getLogger("imptrack.postbacks")

BATCH_SIZE = 500
BATCH_WINDOW_SECONDS = 0.01
RECHECK_SECONDS = 0.02
MATCH_WAIT_SECONDS = 300.0
"""How long a postback waits for its click or impression's table to be known
current. A restarted worker drains its partitions unevenly (one impressions
partition was seen untouched for 22 s while others drained), so this is long;
only a worker whose clicks or impressions agent is stuck this long judges a
postback without knowing, and logs so."""


class Sources:
    """Where a postback's click or impression is looked up, and how far each table's
    agent has written its input."""

    def __init__(
        self,
        clicks: Any,
        clicks_input: TableInput,
        impressions: Any,
        impressions_input: TableInput,
        seal: IdSeal,
    ) -> None:
        self.clicks, self.clicks_input = clicks, clicks_input
        self.impressions, self.impressions_input = impressions, impressions_input
        self.seal = seal

    def _read(self, event: Any, request: PostbackRequest) -> Click | Impression | None:
        if request.matched_by == "clickid":
            return read_in_event_partition(event, self.clicks, request.matched_id)  # type: ignore[no-any-return]
        # An impression is in its envelope's entry, at its slot (app.ids).
        parts = self.seal.parts(request.matched_id)
        if parts is None:
            return None  # read_postback refused IDs not issued here already
        entry = read_in_event_partition(event, self.impressions, parts.envelope_key)
        try:
            return recorded_impression(entry, request.matched_id, parts.slot)
        except UnreadableEnvelope as exc:
            # Only this worker writes the table; an entry it cannot read must not stop
            # the postbacks of the partition: the postback is judged as not found.
            log.error("impressions table entry %s is unreadable: %s", parts.envelope_key, exc)
            return None

    async def find(self, event: Any, request: PostbackRequest) -> Click | Impression | None:
        """The click named by ``clickid``, else the impression named by ``aimp_id``.

        Not found, it is refused as unknown only once its table holds everything the
        edge accepted before this postback: a click or impression an advertiser can
        name was accepted before, but its agent may lag behind this one by a batch,
        or by a whole backlog after a restart (agents/table_progress.py)."""
        key = request.matched_id  # parse_postback made sure there is one
        source = self.clicks_input if request.matched_by == "clickid" else self.impressions_input
        received_ms = id_ms(event.value.postback_id)
        partition = event.message.partition
        deadline = time.monotonic() + MATCH_WAIT_SECONDS
        while True:
            found = self._read(event, request)
            if found is not None or source.holds_everything_before(partition, received_ms):
                return found
            if time.monotonic() > deadline:
                log.warning(
                    "postback %s: %s %s not found, and the %s agent has not shown in %.0f s "
                    "that it has read partition %d up to the postback; judged as not found",
                    event.value.postback_id,
                    source.id_field,
                    key,
                    source.topic,
                    MATCH_WAIT_SECONDS,
                    partition,
                )
                return None
            await asyncio.sleep(RECHECK_SECONDS)


async def _judge(
    event: Any, postback: Postback, sources: Sources, catalog: CatalogView, seal: IdSeal
) -> tuple[str, MatchedPostback] | PostbackOutcome:
    request = read_postback(postback, seal)
    if isinstance(request, PostbackOutcome):
        return request
    source = await sources.find(event, request)
    return judge_postback(
        postback, request, source, catalog.catalog_at(id_ms(postback.postback_id))
    )


def match_postbacks(
    app: faust.App,
    topics: EventTopics,
    sources: Sources,
    catalog: CatalogView,
    seal: IdSeal,
    reply: Reply,
    partitions: int,
) -> Any:
    """Declare the agent on ``app``; ``seal`` refuses IDs the edge did not issue
    before any lookup; ``partitions`` is the deployment's partition count, over which
    the matches are spread by action (app.attribution.matches)."""

    async def match(stream: Any) -> None:
        batches = current_batches(
            stream, catalog, id_time("postback_id"), BATCH_SIZE, BATCH_WINDOW_SECONDS
        )
        async for events in batches:
            sent = []
            refused: list[tuple[Postback, PostbackOutcome]] = []
            matches: list[tuple[str, MatchedPostback]] = []
            for event in well_formed(events, "postback_id", "a postback", log):
                postback = event.value
                judged = await _judge(event, postback, sources, catalog, seal)
                if isinstance(judged, PostbackOutcome):
                    refused.append((postback, judged))
                else:
                    matches.append(judged)
            outcomes = [outcome for _, outcome in refused]
            metrics.took_in("postbacks", len(events))
            metrics.sent_out("postbacks", len(outcomes) + len(matches))
            metrics.postbacks_decided([(o.outcome, o.error_kind) for o in outcomes])
            sent.extend(await send_records(topics, kinds.POSTBACK_OUTCOMES, outcomes))
            for envelope in match_envelopes(matches, partitions):
                sent.append(
                    await topics[kinds.POSTBACK_MATCHES].send(
                        key=envelope.key, value=envelope.value, partition=envelope.partition
                    )
                )
            await asyncio.gather(*sent)
            await reply(refused)

    return app.agent(topics[kinds.POSTBACKS], name="postbacks")(match)
