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
from collections.abc import Mapping
from typing import Any

import faust
import orjson
from redis.exceptions import RedisError

from app.events.records import (
    AFFILIATE_POSTBACK,
    IMPRESSION,
    AffiliatePostbackAttempt,
    DeliveryAttempt,
)
from app.forwarding import outcomes
from app.forwarding.courier import Courier
from app.forwarding.schedule import (
    ATTEMPTS_BEFORE,
    Attempted,
    Claim,
    Delivery,
    DeliverySchedule,
    TaskFields,
    task_fields,
)
from app.metrics import delivery as metrics
from app.ops.redis_retry import REDIS_RETRY_SECONDS
from app.settings import ForwardingSettings

log = logging.getLogger("imptrack.forwarder")

POLL_SECONDS = 0.1
"""How often due retries (and tasks scheduled by other forwarder processes) are looked for."""
CLAIM_BATCH = 64
"""At most this many tasks per claim: a claim is part of one script, and Redis
answers no one else while a script runs."""
STATUS_TIMEOUT = 1.0
LEASE_MARGIN_SECONDS = 10.0
"""A claim outlives the attempt's timeout by this much before another forwarder
process may take the task over (after a crash)."""
FLUSH_ON_STOP_SECONDS = 1.0
"""On a clean stop, how long to try recording the attempts made and not yet recorded
(each one not recorded is made again once its lease runs out)."""


def lease_seconds(settings: ForwardingSettings) -> float:
    return settings.timeout + LEASE_MARGIN_SECONDS


def _record_layout(record: type[faust.Record]) -> tuple[tuple[str, ...], dict[str, Any]]:
    options = record._options
    return tuple(options.fields), {**options.defaults, "__faust": {"ns": options.namespace}}


_ATTEMPT_LAYOUTS = {
    IMPRESSION: _record_layout(DeliveryAttempt),
    AFFILIATE_POSTBACK: _record_layout(AffiliatePostbackAttempt),
}


def delivery_log_record(
    task: Delivery | TaskFields,
    attempt: int,
    at_ms: int,
    result: outcomes.AttemptResult,
    outcome: str,
) -> bytes:
    """The delivery log's record of one attempt, of the task's own kind: a
    :class:`DeliveryAttempt` or an :class:`AffiliatePostbackAttempt` as its
    ``dumps()`` writes it, made without the record (a record costs tens of µs a
    delivery)."""
    task = task_fields(task)
    fields, defaults = _ATTEMPT_LAYOUTS[str(task.get("kind", IMPRESSION))]
    observed: Mapping[str, Any] = {
        "attempt": attempt,
        "at_ms": at_ms,
        "latency_ms": result.latency_ms,
        "outcome": outcome,
        "status": result.status,
        "error": result.error,
    }
    values = {**defaults, **task, **observed}
    record = {name: values[name] for name in fields}
    record["kind"] = defaults["kind"]
    record["__faust"] = defaults["__faust"]
    return orjson.dumps(record)


class Forwarder:
    """Claims due deliveries, attempts each once, records what happened.

    Recording and claiming go together, in batches: each call to Redis
    (:meth:`DeliverySchedule.settle`) records every attempt ended since the last one
    and claims tasks for the slots free, so slots freed in Redis are taken again in
    the same step. While one call is under way the next one's attempts gather.
    """

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
        # Attempts made and not yet recorded in Redis, with their outcomes. Their
        # claims still hold their hosts' slots there until they are.
        self._attempted: list[tuple[Attempted, str]] = []

    def wake(self) -> None:
        """New tasks are due: look now rather than at the next poll."""
        self._wake.set()

    async def run(self) -> None:
        await self.courier.start()
        try:
            while True:
                self._wake.clear()
                attempted, self._attempted = self._attempted, []
                want = min(self.settings.concurrency - len(self._in_flight), CLAIM_BATCH)
                claims: list[Claim] = []
                if attempted or want > 0:
                    try:
                        claims = await self._settle(attempted, max(want, 0))
                    except RedisError as exc:
                        # Kept for the next call: a claim's lease is long enough to
                        # outlast a Redis blip, and giving up would deliver again.
                        self._attempted[:0] = attempted
                        log.warning(
                            "cannot record deliveries or claim more in Redis (%s); retrying",
                            exc,
                        )
                        await asyncio.sleep(REDIS_RETRY_SECONDS)
                        continue
                for claim in claims:
                    task = asyncio.create_task(self._deliver(claim))
                    self._in_flight.add(task)
                    task.add_done_callback(self._done)
                if not self._attempted and (want <= 0 or len(claims) < want):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), POLL_SECONDS)
        finally:
            for task in self._in_flight:
                task.cancel()
            if self._attempted:
                with contextlib.suppress(RedisError, TimeoutError):
                    async with asyncio.timeout(FLUSH_ON_STOP_SECONDS):
                        await self._settle(self._attempted, 0)
            await self.courier.close()

    async def _settle(self, attempted: list[tuple[Attempted, str]], want: int) -> list[Claim]:
        finished, claims = await self.schedule.settle([a for a, _ in attempted], want)
        for (done, outcome), recorded in zip(attempted, finished, strict=True):
            if recorded:
                self.outcomes[outcome] += 1
            else:
                self.stale_claims += 1
                log.warning(
                    "delivery of %s took longer than its lease; another claim took it over",
                    done.claim.id,
                )
        return claims

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._wake.set()  # a slot is free, an attempt is to be recorded
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery failed unexpectedly", exc_info=task.exception())

    async def _deliver(self, claim: Claim) -> None:
        task = claim.fields
        attempt = claim.attempts + 1
        # A replayed task's attempts go on from its dead letter's, with a budget of
        # their own (app.forwarding.schedule.ATTEMPTS_BEFORE).
        this_try = attempt - int(task.get(ATTEMPTS_BEFORE) or 0)
        at_ms = time.time_ns() // 1_000_000
        result = await self.courier.attempt(str(task["url"]))
        outcome = outcomes.outcome(result, this_try, self.settings.max_attempts)
        delay_ms = None
        if outcome == outcomes.RETRYING:
            delay = outcomes.retry_delay(
                this_try,
                self.settings.backoff_seconds,
                self.settings.backoff_max_seconds,
                result.retry_after,
            )
            delay_ms = int(delay * 1000)
        record = delivery_log_record(task, attempt, at_ms, result, outcome)
        metrics.attempted(str(task.get("kind", IMPRESSION)), outcome, result.latency_ms)
        if result.host_alive or outcome == outcomes.DELIVERED:
            breaker = "ok"
        elif result.retryable:
            breaker = "fail"
        else:
            breaker = "-"
        self._attempted.append((Attempted(claim, record, delay_ms, breaker), outcome))

    async def status(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            # Attempts under way, and those made and not yet recorded in Redis.
            "in_flight_here": len(self._in_flight) + len(self._attempted),
            "outcomes_here": dict(self.outcomes),
            "stale_claims": self.stale_claims,
        }
        try:
            # A health page must answer even when Redis does not.
            body["schedule"] = await asyncio.wait_for(self.schedule.status(), STATUS_TIMEOUT)
        except (RedisError, TimeoutError) as exc:
            body["schedule"] = {"error": str(exc) or "Redis did not answer in time"}
        return body
