"""The worker's fetch is for the partitions that were active when it started
(app/compat/faust_consumer.py, ``WorkerConsumerThread.getmany``), on a real Kafka.

Faust 0.15.3 hands aiokafka's fetcher its *live* set of active partitions and
empties it while the fetcher waits (a table recovery pausing the stream). aiokafka
reads an empty set as "every partition" and returns, and consumes, the records it
buffered for the paused ones; Faust drops those, and their positions have moved on
(faust-streaming/faust#216, #221). Faust's hand-off to its consumer thread is
replaced here by a direct call of aiokafka's real fetcher; everything else is real.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.transport.drivers import aiokafka as faust_aiokafka

from app.compat.faust_consumer import WorkerConsumerThread
from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration

PAUSED_RECORDS = 5


class Partitions:
    """A topic of its own with two partitions: ``active`` stays empty until a record
    is sent to it; ``paused`` holds records the consumer has already buffered."""

    def __init__(self, broker: str) -> None:
        self.broker = broker
        self.topic = f"test-fetch-snapshot-{uuid.uuid4().hex[:8]}"
        self.active = TopicPartition(self.topic, 0)
        self.paused = TopicPartition(self.topic, 1)

    async def create(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.broker)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(self.topic, 2, 1)])
        finally:
            await admin.close()

    async def send(self, tp: TopicPartition, count: int) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=self.broker)
        await producer.start()
        try:
            for n in range(count):
                await producer.send_and_wait(tp.topic, f"r{n}".encode(), partition=tp.partition)
        finally:
            await producer.stop()


@pytest.fixture
async def partitions(running_stack: RunningStack) -> Partitions:
    made = Partitions(running_stack.settings.broker)
    await made.create()
    await made.send(made.paused, PAUSED_RECORDS)
    return made


@pytest.fixture
async def consumer(partitions: Partitions) -> AsyncIterator[AIOKafkaConsumer]:
    """Both partitions assigned from the start, the paused one's records buffered."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=partitions.broker, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    await consumer.start()
    try:
        consumer.assign([partitions.active, partitions.paused])
        await consumer.seek_to_beginning()
        for _ in range(100):  # a fetch answered with the paused partition's records
            if consumer.highwater(partitions.paused) == PAUSED_RECORDS:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # its answer is buffered by now
        yield consumer
    finally:
        await consumer.stop()


@pytest.fixture
def worker_thread(monkeypatch: pytest.MonkeyPatch, consumer: AIOKafkaConsumer) -> Any:
    """The worker's consumer thread, its fetch going straight to aiokafka's fetcher
    as Faust's ``_fetch_records`` does in the thread."""

    async def fetch(self: Any, active_partitions: Any, timeout: float) -> Any:  # noqa: ASYNC109 - Faust's signature
        fetcher = consumer._fetcher
        return await fetcher.fetched_records(active_partitions, timeout=timeout)

    monkeypatch.setattr(faust_aiokafka.AIOKafkaConsumerThread, "getmany", fetch)
    return object.__new__(WorkerConsumerThread)


async def test_a_set_emptied_while_the_fetch_waits_does_not_hand_over_paused_partitions(
    partitions: Partitions, consumer: AIOKafkaConsumer, worker_thread: Any
) -> None:
    active = {partitions.active}
    fetching = asyncio.create_task(worker_thread.getmany(active, 5.0))
    await asyncio.sleep(0.3)
    active.clear()  # Faust pauses the stream for a table recovery
    await partitions.send(partitions.active, 1)  # the fetch is answered
    fetched = await fetching
    assert set(fetched) == {partitions.active}
    assert await consumer.position(partitions.paused) == 0, "the paused records were consumed"


async def test_an_empty_set_fetches_nothing(
    partitions: Partitions, consumer: AIOKafkaConsumer, worker_thread: Any
) -> None:
    assert await worker_thread.getmany(set(), 1.0) == {}
    assert await consumer.position(partitions.paused) == 0, "the paused records were consumed"
