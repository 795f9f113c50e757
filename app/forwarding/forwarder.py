"""The delivery loop: claim due tasks, attempt each once, record what happened.

A task is an impression for its advertiser or a conversion's status for its
affiliate (:data:`~app.forwarding.schedule.Delivery`); both are delivered alike, and
only the log record says which.

Runs in every forwarder process (``imptrack forwarder``) next to the forwarder agent
(which only schedules tasks; see agents/forwarder.py). Any forwarder process may
deliver any task: the schedule in Redis hands each due task to one claim at a time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

from redis.exceptions import RedisError

from app.events.records import AffiliatePostbackAttempt, AffiliatePostbackTask, DeliveryAttempt
from app.forwarding import outcomes
from app.forwarding.courier import Courier
from app.forwarding.schedule import Claim, Delivery, DeliverySchedule
from app.ops.redis_retry import REDIS_RETRY_SECONDS, until_redis_answers
from app.settings import ForwardingSettings

log = logging.getLogger("imptrack.forwarder")

POLL_SECONDS = 0.1
"""How often due retries (and tasks scheduled by other forwarder processes) are looked for."""
CLAIM_BATCH = 64
"""At most this many tasks per claim. A claim scans four times as many due entries
and moves those of a host at its cap a little later (so other hosts' tasks behind
them are reached): asking for every free slot at once made each claim rewrite
about a thousand entries of the one busy host."""
GATHER_SECONDS = 0.005
"""After a delivery frees a slot, wait this long for others before claiming again:
one claim for several slots rather than one per slot (each claim costs Redis a scan).
"""
STATUS_TIMEOUT = 1.0
LEASE_MARGIN_SECONDS = 10.0
"""A claim outlives the attempt's timeout by this much before another forwarder
process may take the task over (after a crash)."""


def lease_seconds(settings: ForwardingSettings) -> float:
    return settings.timeout + LEASE_MARGIN_SECONDS


def delivery_log_record(
    task: Delivery, attempt: int, at_ms: int, result: outcomes.AttemptResult, outcome: str
) -> bytes:
    """The delivery log's record of one attempt, of the task's own kind."""
    observed: dict[str, Any] = {
        "offer_id": task.offer_id,
        "pid": task.pid,
        "advertiser_id": task.advertiser_id,
        "destination": task.destination,
        "url": task.url,
        "attempt": attempt,
        "at_ms": at_ms,
        "latency_ms": result.latency_ms,
        "outcome": outcome,
        "status": result.status,
        "error": result.error,
    }
    if isinstance(task, AffiliatePostbackTask):
        return AffiliatePostbackAttempt(
            conversion_id=task.conversion_id,
            revision=task.revision,
            postback_id=task.postback_id,
            conversion_status=task.conversion_status,
            payout=task.payout,
            currency=task.currency,
            goal=task.goal,
            action_id=task.action_id,
            **observed,
        ).dumps()
    return DeliveryAttempt(aimp_id=task.aimp_id, **observed).dumps()


class Forwarder:
    def __init__(
        self, settings: ForwardingSettings, schedule: DeliverySchedule, courier: Courier
    ) -> None:
        self.settings = settings
        self.schedule = schedule
        self.courier = courier
        self.outcomes: Counter[str] = Counter()
        self.stale_claims = 0
        self._wake = asyncio.Event()
        self._in_flight: set[asyncio.Task[None]] = set()

    def wake(self) -> None:
        """New tasks are due: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        await self.courier.start()
        try:
            while True:
                self._wake.clear()
                free = self.settings.concurrency - len(self._in_flight)
                claims: list[Claim] = []
                if free > 0:
                    try:
                        claims = await self.schedule.claim(min(free, CLAIM_BATCH))
                    except RedisError as exc:
                        log.warning("cannot claim deliveries from Redis (%s); retrying", exc)
                        await asyncio.sleep(REDIS_RETRY_SECONDS)
                        continue
                for claim in claims:
                    task = asyncio.create_task(self._deliver(claim))
                    self._in_flight.add(task)
                    task.add_done_callback(self._done)
                if free <= 0 or len(claims) < min(free, CLAIM_BATCH):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
                    await asyncio.sleep(GATHER_SECONDS)
        finally:
            for task in self._in_flight:
                task.cancel()
            await self.courier.close()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery failed unexpectedly", exc_info=task.exception())

    async def _deliver(self, claim: Claim) -> None:
        task = claim.task
        attempt = claim.attempts + 1
        at_ms = time.time_ns() // 1_000_000
        result = await self.courier.attempt(task.url)
        outcome = outcomes.outcome(result, attempt, self.settings.max_attempts)
        delay_ms = None
        if outcome == outcomes.RETRYING:
            delay = outcomes.retry_delay(
                attempt,
                self.settings.backoff_seconds,
                self.settings.backoff_max_seconds,
                result.retry_after,
            )
            delay_ms = int(delay * 1000)
        record = delivery_log_record(task, attempt, at_ms, result, outcome)
        if result.host_alive or outcome == outcomes.DELIVERED:
            breaker = "ok"
        elif result.retryable:
            breaker = "fail"
        else:
            breaker = "-"
        # The claim's lease is long enough to outlast a Redis blip; giving up here
        # would deliver the impression again after the lease.
        finished = await until_redis_answers(
            lambda: self.schedule.finish(claim, record, retry_delay_ms=delay_ms, breaker=breaker),
            "record a delivery",
            log,
        )
        if finished:
            self.outcomes[outcome] += 1
        else:
            self.stale_claims += 1
            log.warning(
                "delivery of %s took longer than its lease; another claim took it over",
                claim.id,
            )

    async def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "in_flight_here": len(self._in_flight),
            "outcomes_here": dict(self.outcomes),
            "stale_claims": self.stale_claims,
        }
        try:
            # A health page must answer even when Redis does not.
            body["schedule"] = await asyncio.wait_for(self.schedule.status(), STATUS_TIMEOUT)
        except (RedisError, TimeoutError) as exc:
            body["schedule"] = {"error": str(exc) or "Redis did not answer in time"}
        return body
