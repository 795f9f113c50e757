"""Sending dead-lettered deliveries again (``imptrack deliveries replay``): each goes
back into the delivery schedule in Redis, due now, as the task it was, and the
forwarders deliver it as any other.

A replayed task names its dead letter (``replay_of``: what it delivered, where, and
the attempt it died at), so it is a delivery of its own: the original's dedup key
does not drop it, and the same dead letter replayed twice is scheduled once. Its
attempts are numbered on from the dead letter's (each is one more row in DuckDB's
``deliveries`` or ``affiliate_postbacks``) with a budget of FORWARD_MAX_ATTEMPTS of
their own, so a replay that succeeds is logged once as delivered.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from app.forwarding.forwarder import lease_seconds
from app.forwarding.schedule import ATTEMPTS_BEFORE, REPLAY_OF, DeliverySchedule, delivered_item
from app.settings import Settings


def replay_name(task: dict[str, Any], attempts: int) -> str:
    """The dead letter a replay of ``task`` sends again: what it told of, where, and
    the attempt it died at (a replay that dies too is a dead letter of its own)."""
    where = hashlib.blake2b(str(task["destination"]).encode(), digest_size=6).hexdigest()
    return f"{delivered_item(task)}@{where}#{attempts}"


def replayed(task: dict[str, Any], attempts: int) -> dict[str, Any]:
    """``task`` as it goes back into the schedule."""
    return {**task, REPLAY_OF: replay_name(task, attempts), ATTEMPTS_BEFORE: attempts}


async def replay_deliveries(settings: Settings, dead: Sequence[tuple[dict[str, Any], int]]) -> int:
    """Schedule each ``(task, attempts)`` again, due now; return how many were new
    (a dead letter already replayed is not scheduled twice)."""
    forwarding = settings.forwarding
    client = aioredis.from_url(settings.redis, socket_timeout=10, socket_connect_timeout=3)
    schedule = DeliverySchedule(
        client,
        dedup_seconds=forwarding.dedup_seconds,
        host_concurrency=forwarding.host_concurrency,
        breaker_failures=forwarding.breaker_failures,
        breaker_seconds=forwarding.breaker_seconds,
        lease_seconds=lease_seconds(forwarding),
    )
    try:
        return await schedule.enqueue([replayed(task, attempts) for task, attempts in dead])
    finally:
        await client.aclose()
