"""The postbacks agent: reads each postback the edge stored, finds the click or
impression it names, and either refuses it (the outcome goes to the log and back to
the edge) or passes the conversion it makes to the conversions agent.

Postbacks are keyed by the ID they name, so this partition of the ``clicks`` and
``impressions`` tables is the one that holds it, in this worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from functools import cache
from typing import Any

from app.attribution.conversions import action_key, refusal
from app.attribution.matching import attribute
from app.attribution.params import PostbackRefused, PostbackRequest, parse_postback
from app.attribution.replies import reply
from app.compat.table_writes import read_in_event_partition
from app.events.records import Click, Impression, MatchedPostback, Postback, PostbackOutcome
from app.events.topics import postback_matches_topic, postback_outcomes_topic, postbacks_topic
from app.ids import IdSeal, id_ms, is_valid_id
from app.installation_secrets import load_id_key
from app.settings import settings
from app.streams.catalog import catalog, catalog_current_for
from app.streams.faust_app import app
from tables.clicks import clicks_input, clicks_table
from tables.impressions import impressions_input, impressions_table

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


@cache
def _id_seal() -> IdSeal:
    """The edge's ID key: IDs it did not issue are refused before any lookup."""
    return IdSeal(load_id_key(settings()))


async def _find(event: Any, request: PostbackRequest) -> Click | Impression | None:
    """The click named by ``clickid``, else the impression named by ``aimp_id``.

    Not found, it is refused as unknown only once its table holds everything the
    edge accepted before this postback: a click or impression an advertiser can
    name was accepted before, but its agent may lag behind this one by a batch,
    or by a whole backlog after a restart (app/streams/table_progress.py)."""
    key = request.clickid or request.aimp_id
    assert key is not None  # parse_postback requires one of them
    table, source = (
        (clicks_table, clicks_input) if request.clickid else (impressions_table, impressions_input)
    )
    received_ms = id_ms(event.value.postback_id)
    partition = event.message.partition
    deadline = time.monotonic() + MATCH_WAIT_SECONDS
    while True:
        found = read_in_event_partition(event, table, key)
        if found is not None or source.holds_everything_before(partition, received_ms):
            return found  # type: ignore[no-any-return]
        if time.monotonic() > deadline:
            log.warning(
                "postback %s: %s %s not found, and the %s agent has not shown in %.0f s "
                "that it has read partition %d up to the postback; judged as not found",
                event.value.postback_id,
                "clickid" if request.clickid else "aimp_id",
                key,
                source.topic,
                MATCH_WAIT_SECONDS,
                partition,
            )
            return None
        await asyncio.sleep(RECHECK_SECONDS)


@app.agent(postbacks_topic)
async def match_postbacks(stream: Any) -> None:
    await catalog.ready.wait()
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
        await catalog_current_for(events, "postback_id")
        sent = []
        refused: list[tuple[Postback, PostbackOutcome]] = []
        for event in events:
            postback = event.value
            if not is_valid_id(postback.postback_id):
                log.error("skipped a postback with a malformed postback_id at %s", event.message)
                continue
            source = None
            try:
                if postback.problem:
                    raise PostbackRefused(postback.problem)
                request = parse_postback(postback.params, _id_seal())
                source = await _find(event, request)
                # Judged by the catalog in force when the edge received it, so a
                # replay after a crash gets the same verdict.
                in_force = catalog.catalog_at(id_ms(postback.postback_id))
                conversion = attribute(request, postback, source, in_force)
            except PostbackRefused as exc:
                outcome = refusal(
                    postback,
                    str(exc),
                    offer_id=None if source is None else source.offer_id,
                    pid=None if source is None else source.pid,
                    advertiser_id=None if source is None else source.advertiser_id,
                )
                refused.append((postback, outcome))
                sent.append(
                    await postback_outcomes_topic.send(key=postback.postback_id, value=outcome)
                )
                continue
            key = action_key(conversion.offer_id, conversion.action_id, postback.postback_id)
            matched = MatchedPostback(postback=postback, conversion=conversion)
            sent.append(await postback_matches_topic.send(key=key, value=matched))
        await asyncio.gather(*sent)
        await reply(refused)
