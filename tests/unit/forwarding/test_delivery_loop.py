"""The delivery loop with its schedule and courier stood in for: attempts are
recorded in batches together with the next claim, an attempt is never lost to a
Redis error, and each log record is its record's own ``dumps()``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

import orjson
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from app.events.records import AffiliatePostbackAttempt, DeliveryAttempt
from app.forwarding.forwarder import Forwarder, delivery_log_record
from app.forwarding.outcomes import AttemptResult
from app.forwarding.schedule import ATTEMPTS_BEFORE, REPLAY_OF, Attempted, Claim
from app.settings import ForwardingSettings

_IMPRESSION = {
    "aimp_id": "01a0c45077b85314fec65d26",
    "offer_id": 9500,
    "pid": 3,
    "advertiser_id": 9,
    "destination": "https://adv.example/imp?a={aimp_id}",
    "url": "https://adv.example/imp?a=01a0c45077b85314fec65d26",
    "kind": "impression",
}
_AFFILIATE_POSTBACK = {
    "conversion_id": "01a0c45077b85314fec65d27",
    "revision": 2,
    "postback_id": "01a0c45077b85314fec65d28",
    "offer_id": 9500,
    "pid": 3,
    "advertiser_id": 9,
    "conversion_status": 1,
    "payout": "7.00",
    "currency": "USD",
    "goal": "1",
    "destination": "https://aff.example/pb?c={clickid}",
    "url": "https://aff.example/pb?c=x",
    "action_id": None,
    "kind": "affiliate_postback",
}


@pytest.mark.parametrize(
    ("task", "record"),
    [
        (_IMPRESSION, DeliveryAttempt),
        ({k: v for k, v in _IMPRESSION.items() if k != "kind"}, DeliveryAttempt),
        (_AFFILIATE_POSTBACK, AffiliatePostbackAttempt),
    ],
    ids=["impression", "impression-before-kinds", "affiliate-postback"],
)
@pytest.mark.parametrize(
    "result",
    [AttemptResult(200, None, 2.5, retryable=False), AttemptResult(None, "timed out", 3.0, True)],
    ids=["delivered", "timed-out"],
)
def test_a_log_record_is_what_its_record_would_write(
    task: dict[str, Any], record: Any, result: AttemptResult
) -> None:
    """The exporter and the dead-letter readers read these bytes as the record."""
    written = delivery_log_record(task, 2, 1_700_000_000_000, result, "delivered")
    observed = {
        "attempt": 2,
        "at_ms": 1_700_000_000_000,
        "latency_ms": result.latency_ms,
        "outcome": "delivered",
        "status": result.status,
        "error": result.error,
    }
    fields = {k: v for k, v in task.items() if k != "kind"}
    assert written == record(**fields, **observed).dumps()


def _settings(concurrency: int = 8) -> ForwardingSettings:
    return ForwardingSettings.from_env({"FORWARD_CONCURRENCY": str(concurrency)})


def _claim(n: int) -> Claim:
    aimp_id = f"01a0c45077b85314fec6{n:04x}"
    fields = _IMPRESSION | {"aimp_id": aimp_id, "url": f"https://adv.example/imp?a={aimp_id}"}
    return Claim(f"https://adv.example:443|{aimp_id}|d", "token", fields, 0)


class FakeSchedule:
    """Hands out ``claims`` and keeps each settle call's attempts; fails a call
    while ``failing`` is set."""

    def __init__(self, claims: list[Claim]) -> None:
        self.claims = claims
        self.calls: list[list[Attempted]] = []
        self.failing = 0

    async def settle(
        self, attempts: Sequence[Attempted], want: int, scan: int | None = None
    ) -> tuple[list[bool], list[Claim]]:
        await asyncio.sleep(0.01)  # a round trip, during which attempts may end
        if self.failing:
            self.failing -= 1
            raise RedisConnectionError("Redis went away")
        self.calls.append(list(attempts))
        handed, self.claims = self.claims[:want], self.claims[want:]
        return [True] * len(attempts), handed


class FakeCourier:
    """Answers 200 to every URL once ``go`` is set."""

    def __init__(self) -> None:
        self.go = asyncio.Event()
        self.urls: list[str] = []

    async def start(self) -> None:
        pass

    async def close(self) -> None:
        pass

    async def attempt(self, url: str) -> AttemptResult:
        await self.go.wait()
        self.urls.append(url)
        return AttemptResult(200, None, 1.0, retryable=False)


async def _run_until(forwarder: Forwarder, done: Any) -> None:
    running = asyncio.create_task(forwarder.run())
    try:
        async with asyncio.timeout(10):
            while not done():  # noqa: ASYNC110 - the loop under test has no event to await
                await asyncio.sleep(0.005)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_attempts_are_recorded_many_to_a_call_each_once() -> None:
    """Eight attempts ending together are recorded by one settle call (not one
    each), and every attempt is recorded exactly once."""
    claims = [_claim(n) for n in range(8)]
    schedule = FakeSchedule(claims)
    courier = FakeCourier()
    forwarder = Forwarder(_settings(), schedule, courier)  # type: ignore[arg-type]
    courier.go.set()
    await _run_until(forwarder, lambda: forwarder.outcomes["delivered"] == 8)

    recorded = [a.claim.id for call in schedule.calls for a in call]
    assert sorted(recorded) == sorted(c.id for c in claims)
    assert max(len(call) for call in schedule.calls) == 8
    assert all(orjson.loads(a.record)["outcome"] == "delivered" for c in schedule.calls for a in c)


async def test_attempts_are_kept_through_a_redis_error_and_recorded_after() -> None:
    """A settle call that fails loses no attempt: they go with the next call."""
    claims = [_claim(n) for n in range(3)]
    schedule = FakeSchedule(claims)
    courier = FakeCourier()
    forwarder = Forwarder(_settings(), schedule, courier)  # type: ignore[arg-type]
    running = asyncio.create_task(forwarder.run())
    try:
        async with asyncio.timeout(10):
            while len(forwarder._in_flight) < 3:  # noqa: ASYNC110 - see _run_until
                await asyncio.sleep(0.005)
        schedule.failing = 2
        courier.go.set()
        async with asyncio.timeout(10):
            while forwarder.outcomes["delivered"] < 3:  # noqa: ASYNC110 - see _run_until
                await asyncio.sleep(0.005)
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running

    recorded = [a.claim.id for call in schedule.calls for a in call]
    assert sorted(recorded) == sorted(c.id for c in claims)
    assert len(courier.urls) == 3


class FailingCourier(FakeCourier):
    """Answers 503 (retryable) to every URL."""

    async def attempt(self, url: str) -> AttemptResult:
        self.urls.append(url)
        return AttemptResult(503, "HTTP 503", 1.0, retryable=True)


async def test_a_replayed_task_retries_with_a_budget_of_its_own() -> None:
    """A dead letter replayed after 5 attempts is attempted as number 6, and a failure
    there is a retry (its first of FORWARD_MAX_ATTEMPTS), not a dead letter again;
    the same failure at the original's 5th attempt is one."""
    replayed_claim = _claim(1)
    replayed_claim = Claim(
        replayed_claim.id,
        "token",
        replayed_claim.fields | {REPLAY_OF: "x@y#5", ATTEMPTS_BEFORE: 5},
        5,
    )
    original = _claim(2)
    original = Claim(original.id, "token", original.fields, 4)
    schedule = FakeSchedule([replayed_claim, original])
    forwarder = Forwarder(_settings(), schedule, FailingCourier())  # type: ignore[arg-type]
    await _run_until(forwarder, lambda: sum(forwarder.outcomes.values()) == 2)
    recorded = {
        a.claim.id: (orjson.loads(a.record)["attempt"], orjson.loads(a.record)["outcome"])
        for call in schedule.calls
        for a in call
    }
    assert recorded[replayed_claim.id] == (6, "retrying")
    assert recorded[original.id] == (5, "dead_letter")
