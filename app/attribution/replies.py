"""The worker's side of a postback's verdict: publish it to the waiting edge."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from app.attribution.conversions import verdict
from app.attribution.verdicts import publish_verdicts
from app.events.records import Postback, PostbackOutcome

log = logging.getLogger("imptrack.postbacks")

PUBLISH_TIMEOUT = 1.0
"""Past this the edge has answered "pending" anyway; the agent must not stall."""


Reply = Callable[[list[tuple[Postback, PostbackOutcome]]], Awaitable[None]]
"""Tells the edge processes waiting for postbacks what became of them."""


def replying_through(client: aioredis.Redis) -> Reply:
    """:func:`reply` through ``client``."""

    async def reply_with(decided: list[tuple[Postback, PostbackOutcome]]) -> None:
        await reply(client, decided)

    return reply_with


async def reply(client: aioredis.Redis, decided: list[tuple[Postback, PostbackOutcome]]) -> None:
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
            await publish_verdicts(client, verdicts)
    except (RedisError, OSError, TimeoutError) as exc:
        log.warning("could not publish %d postback verdicts: %s", len(verdicts), exc)
