"""The delivery schedule's Redis scripts, against a real Redis: replays (by task, and
by the source record of an envelope of tasks), leases,
host caps, circuit breakers and the delivery log."""

from __future__ import annotations

import asyncio

import orjson
import pytest
import redis.asyncio as aioredis

from app.events.provenance import Source
from app.events.records import AffiliatePostbackTask, ForwardTask
from app.forwarding.replay import replay_name, replayed
from app.forwarding.schedule import (
    DUE,
    NEW_SOURCE_MS,
    REPLAY_OF,
    SOURCES,
    TASKS,
    DeliverySchedule,
    SourceMark,
    TaskGroup,
    task_id,
)
from app.ids import IdGenerator
from tests.ids import TEST_SEAL

pytestmark = pytest.mark.integration

_ids = IdGenerator(TEST_SEAL)


def _task(host: str = "http://adv.example", destination: str = "main") -> ForwardTask:
    aimp_id = _ids.new_id()
    return ForwardTask(
        aimp_id=aimp_id,
        offer_id=1,
        pid=2,
        advertiser_id=3,
        destination=f"{host}/{destination}",
        url=f"{host}/i?a={aimp_id}",
    )


def _schedule(client: aioredis.Redis, **overrides: float) -> DeliverySchedule:
    options: dict[str, float] = {
        "dedup_seconds": 3600,
        "host_concurrency": 2,
        "breaker_failures": 3,
        "breaker_seconds": 0.5,
        "lease_seconds": 0.3,
    }
    options.update(overrides)
    return DeliverySchedule(
        client,
        dedup_seconds=int(options["dedup_seconds"]),
        host_concurrency=int(options["host_concurrency"]),
        breaker_failures=int(options["breaker_failures"]),
        breaker_seconds=options["breaker_seconds"],
        lease_seconds=options["lease_seconds"],
    )


async def test_a_replayed_task_is_scheduled_once(client: aioredis.Redis) -> None:
    schedule = _schedule(client)
    task = _task()
    assert await schedule.enqueue([task, task]) == 1
    assert await schedule.enqueue([task]) == 0
    claims = await schedule.claim(10)
    assert [c.task for c in claims] == [task]
    assert claims[0].attempts == 0 and claims[0].id == task_id(task)
    # Delivered and gone from the schedule: a replay still is not scheduled again.
    assert await schedule.finish(claims[0], b"{}", retry_delay_ms=None, breaker="ok")
    assert await schedule.enqueue([task]) == 0
    assert await schedule.claim(10) == []


def _from(offset: int, accepted_ms: int, partition: int = 0) -> SourceMark:
    return SourceMark(Source("impressions", partition, offset), accepted_ms)


async def _delivered(schedule: DeliverySchedule) -> list[ForwardTask]:
    """Claim every due task and finish it as delivered; the tasks, in order."""
    claims = await schedule.claim(100)
    for claim in claims:
        assert await schedule.finish(claim, b"{}", retry_delay_ms=None, breaker="ok")
    return [claim.task for claim in claims]


async def test_an_envelope_replayed_after_its_delivery_is_known_by_its_source(
    client: aioredis.Redis,
) -> None:
    """Forward tasks named by their source record: a replay (a worker or forwarder
    reading the partition again) is recognised by the source's offset however long
    ago its tasks were delivered, with no key kept per impression; a later record of
    the partition, or any record of another partition, is new."""
    schedule = _schedule(client, host_concurrency=10)
    first, second = [_task(), _task()], [_task()]
    assert await schedule.enqueue_groups([TaskGroup(first, _from(10, 1_000))]) == 2
    assert await schedule.enqueue_groups([TaskGroup(second, _from(11, 1_001))]) == 1
    assert sorted(t.aimp_id for t in await _delivered(schedule)) == sorted(
        t.aimp_id for t in first + second
    )

    replayed = [TaskGroup(first, _from(10, 1_000)), TaskGroup(second, _from(11, 1_001))]
    assert await schedule.enqueue_groups(replayed) == 0
    assert await schedule.claim(10) == []
    # One field per source partition, and no forwarded: key per task.
    assert await client.hgetall(SOURCES) == {b"impressions:0": b"11:1001"}
    assert await client.keys("*forwarded:*") == []

    later, elsewhere = [_task()], [_task()]
    groups = [TaskGroup(later, _from(12, 1_002)), TaskGroup(elsewhere, _from(3, 900, partition=1))]
    assert await schedule.enqueue_groups(groups) == 2


async def test_a_source_topic_made_anew_starts_its_mark_again(client: aioredis.Redis) -> None:
    """Offsets from 0 again (a Kafka cluster wiped, Redis kept): a record at or below
    the mark whose impressions are far newer than the mark's is no replay."""
    schedule = _schedule(client)
    assert await schedule.enqueue_groups([TaskGroup([_task()], _from(500, 1_000))]) == 1
    # A replay's impressions may be a little newer than the mark's (the edges'
    # envelopes are appended in the order their acks come), not this much.
    assert await schedule.enqueue_groups([TaskGroup([_task()], _from(499, 1_500))]) == 0
    anew = 1_000 + NEW_SOURCE_MS + 1
    assert await schedule.enqueue_groups([TaskGroup([_task()], _from(0, anew))]) == 1
    assert await client.hget(SOURCES, "impressions:0") == f"0:{anew}".encode()
    assert await schedule.enqueue_groups([TaskGroup([_task()], _from(0, anew))]) == 0


async def test_the_same_impression_to_another_destination_is_another_delivery(
    client: aioredis.Redis,
) -> None:
    schedule = _schedule(client)
    task = _task(destination="a")
    other = ForwardTask.from_data({**task.asdict(), "destination": "http://adv.example/b"})
    assert await schedule.enqueue([task, other]) == 2


async def test_a_claim_whose_lease_runs_out_is_claimed_again(client: aioredis.Redis) -> None:
    """A worker that died mid-delivery: after the lease, another claim takes the task,
    and the dead claim can no longer record anything."""
    schedule = _schedule(client)
    task = _task()
    await schedule.enqueue([task])
    (first,) = await schedule.claim(10)
    assert await schedule.claim(10) == []  # leased
    await asyncio.sleep(0.4)
    (second,) = await schedule.claim(10)
    assert second.task == task and second.token != first.token
    assert not await schedule.finish(first, b"{}", retry_delay_ms=None, breaker="ok")
    assert await schedule.finish(second, b"{}", retry_delay_ms=None, breaker="ok")


async def test_a_retry_is_due_after_its_delay_with_its_attempt_count(
    client: aioredis.Redis,
) -> None:
    schedule = _schedule(client)
    await schedule.enqueue([_task()])
    (claim,) = await schedule.claim(10)
    assert await schedule.finish(claim, b"{}", retry_delay_ms=150, breaker="-")
    assert await schedule.claim(10) == []
    await asyncio.sleep(0.2)
    (again,) = await schedule.claim(10)
    assert again.attempts == 1 and again.task == claim.task


async def test_a_host_never_has_more_than_its_cap_in_flight(client: aioredis.Redis) -> None:
    schedule = _schedule(client, host_concurrency=2, lease_seconds=30)
    busy = [_task("http://busy.example") for _ in range(5)]
    calm = _task("http://calm.example")
    await schedule.enqueue([*busy, calm])
    claims = await schedule.claim(10)
    hosts = sorted(c.host for c in claims)
    assert hosts == ["http://busy.example:80"] * 2 + ["http://calm.example:80"]
    # One finishes: one more of that host may go.
    busy_claim = next(c for c in claims if c.host == "http://busy.example:80")
    await schedule.finish(busy_claim, b"{}", retry_delay_ms=None, breaker="ok")
    await asyncio.sleep(0.05)
    assert len(await schedule.claim(10)) == 1


async def test_an_open_breaker_holds_deliveries_back_then_lets_one_probe(
    client: aioredis.Redis,
) -> None:
    schedule = _schedule(client, breaker_failures=3, breaker_seconds=0.5, host_concurrency=10)
    tasks = [_task("http://dead.example") for _ in range(6)]
    await schedule.enqueue(tasks)
    claims = await schedule.claim(3)
    for claim in claims:
        await schedule.finish(claim, b"{}", retry_delay_ms=0, breaker="fail")
    # Three consecutive failures: open. Nothing is handed out, and no attempt is used.
    assert await schedule.claim(10) == []
    status = await schedule.status()
    assert status["breaker_opened"] == 1 and status["deferred"] == 6
    await asyncio.sleep(0.55)
    # Half-open: a single probe.
    (probe,) = await schedule.claim(10)
    assert await schedule.claim(10) == []
    await schedule.finish(probe, b"{}", retry_delay_ms=None, breaker="ok")
    await asyncio.sleep(0.15)
    assert len(await schedule.claim(10)) == 5  # closed again


async def test_every_finished_attempt_is_in_the_log_until_acknowledged(
    client: aioredis.Redis,
) -> None:
    schedule = _schedule(client)
    await schedule.ensure_log_group()
    await schedule.enqueue([_task(), _task()])
    for n, claim in enumerate(await schedule.claim(10)):
        await schedule.finish(claim, f'{{"n": {n}}}'.encode(), retry_delay_ms=None, breaker="ok")
    entries = await schedule.read_log("w1", 10, 100)
    assert [e.record for e in entries] == [b'{"n": 0}', b'{"n": 1}']
    # Read and not acknowledged (a crash): the same consumer finds them again.
    again = await schedule.read_log("w1", 10, 0, pending=True)
    assert [e.id for e in again] == [e.id for e in entries]
    # ...and another shipper adopts them once they have been idle long enough.
    await asyncio.sleep(0.1)
    adopted = await schedule.adopt_stale_log("w2", 50, 10)
    assert [e.id for e in adopted] == [e.id for e in entries]
    await schedule.ack_log([e.id for e in adopted])
    assert await schedule.read_log("w2", 10, 0, pending=True) == []
    assert (await schedule.status())["log_unshipped"] == 0


def _affiliate_postback(revision: int, host: str = "http://aff.example") -> AffiliatePostbackTask:
    conversion_id = "01a0c45077b85314fec65d26"
    return AffiliatePostbackTask(
        conversion_id=conversion_id,
        revision=revision,
        postback_id=_ids.new_id(),
        offer_id=1,
        pid=2,
        advertiser_id=3,
        conversion_status=2 if revision == 1 else 1,
        payout="7.00",
        currency="USD",
        goal="1",
        destination=f"{host}/pb?c={{clickid}}&s={{status}}",
        url=f"{host}/pb?c=x&s={2 if revision == 1 else 1}",
        action_id="A-1",
    )


async def test_affiliate_postbacks_share_the_schedule_each_revision_once(
    client: aioredis.Redis,
) -> None:
    """An affiliate postback comes back from the schedule as one (its kind kept through
    Redis, retries included); each revision of a conversion is a delivery of its own,
    and a replayed one is recognised; a task stored before deliveries had kinds is
    an impression."""
    schedule = _schedule(client)
    pending, approved = _affiliate_postback(1), _affiliate_postback(2)
    impression = _task(host="http://adv.example")
    assert await schedule.enqueue([pending, approved, impression]) == 3
    assert await schedule.enqueue([pending, approved]) == 0
    claims = {c.id: c for c in await schedule.claim(10)}
    assert {i: type(c.task) for i, c in claims.items()} == {
        task_id(pending): AffiliatePostbackTask,
        task_id(approved): AffiliatePostbackTask,
        task_id(impression): ForwardTask,
    }
    retried = claims[task_id(pending)]
    assert await schedule.finish(retried, b"{}", retry_delay_ms=0, breaker="-")
    (again,) = [c for c in await schedule.claim(10) if c.id == retried.id]
    assert again.task == pending and again.attempts == 1
    old = {k: v for k, v in impression.asdict().items() if k != "kind"}
    stored_before = "http://old.example:80|old|0"
    await client.hset(TASKS, stored_before, orjson.dumps({"task": old, "attempts": 0}))
    await client.zadd(DUE, {stored_before: 0})
    (found,) = [c for c in await schedule.claim(10) if c.id == stored_before]
    assert found.task == impression


async def test_a_dead_letter_replayed_is_a_delivery_of_its_own_scheduled_once(
    client: aioredis.Redis,
) -> None:
    """imptrack deliveries replay: the original's dedup key does not drop the replay;
    the same dead letter replayed twice is scheduled once; its attempts go on from
    the dead letter's. A replay that died too is another dead letter."""
    schedule = _schedule(client)
    task = _task()
    assert await schedule.enqueue([task]) == 1
    (claim,) = await schedule.claim(10)
    assert await schedule.finish(claim, b"{}", retry_delay_ms=None, breaker="fail")
    assert await schedule.enqueue([task]) == 0  # the original, replayed: dropped

    again = replayed(task.asdict(), 5)
    assert await schedule.enqueue([again, again]) == 1
    assert await schedule.enqueue([replayed(task.asdict(), 5)]) == 0
    (claim,) = await schedule.claim(10)
    assert claim.attempts == 5 and claim.fields[REPLAY_OF] == replay_name(task.asdict(), 5)
    assert claim.id != task_id(task)
    assert await schedule.finish(claim, b"{}", retry_delay_ms=None, breaker="fail")
    # Dead again at attempt 10: that dead letter is replayed once more.
    assert await schedule.enqueue([replayed(task.asdict(), 10)]) == 1
