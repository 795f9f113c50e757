"""Waiting out a Redis outage where giving up would lose or double something."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.exceptions import RedisError

T = TypeVar("T")

REDIS_RETRY_SECONDS = 0.5
"""How long to wait before asking Redis again after it did not answer."""


async def until_redis_answers(
    call: Callable[[], Awaitable[T]], doing: str, log: logging.Logger
) -> T:
    """``await call()`` until it succeeds, warning "cannot <doing> in Redis" meanwhile."""
    while True:
        try:
            return await call()
        except RedisError as exc:
            log.warning("cannot %s in Redis (%s); retrying", doing, exc)
            await asyncio.sleep(REDIS_RETRY_SECONDS)
