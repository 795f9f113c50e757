"""The worker's side of a postback's verdict: publish it to the waiting edge."""

from __future__ import annotations

import asyncio
import logging

from redis.exceptions import RedisError

from app.attribution.conversions import verdict
from app.attribution.verdicts import publish_verdicts
from app.events.records import Postback, PostbackOutcome
from app.streams.redis import worker_redis

log = logging.getLogger("imptrack.postbacks")

PUBLISH_TIMEOUT = 1.0
"""Past this the edge has answered "pending" anyway; the agent must not stall."""


async def reply(decided: list[tuple[Postback, PostbackOutcome]]) -> None:
    """Tell the edge processes waiting for these postbacks what became of them.

    Called once the outcomes are on the broker: an answer never says more than the
    log does. Best effort: a lost verdict is a "pending" answer, not a lost postback.
    """
    verdicts = [
        (postback.reply_to, outcome.postback_id, verdict(outcome))
        for postback, outcome in decided
        if postback.reply_to
    ]
    if not verdicts:
        return
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            await publish_verdicts(worker_redis(), verdicts)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("could not publish %d postback verdicts: %s", len(verdicts), exc)
