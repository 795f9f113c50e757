"""What the exporter and the catalog followers ask the broker through aiokafka's
private client (app/compat/kafka_metadata.py), on a real Kafka: an aiokafka upgrade
that moves it fails here."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.compat.kafka_metadata import TOPICS_POLL_SECONDS, cluster_id, wait_for_partitions
from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration


@pytest.fixture
async def admin(running_stack: RunningStack) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=running_stack.settings.broker)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def consumer(running_stack: RunningStack) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer that subscribes to nothing, as the exporter's before it assigns."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=running_stack.settings.broker, enable_auto_commit=False
    )
    await consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def test_the_cluster_id_is_the_one_the_admin_api_reports(
    consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient
) -> None:
    described = await admin.describe_cluster()
    assert await cluster_id(consumer._client) == described["cluster_id"]


async def test_partitions_are_awaited_until_every_topic_exists(
    consumer: AIOKafkaConsumer, admin: AIOKafkaAdminClient
) -> None:
    """A process may start before its topics are created: it waits for all of them,
    then gets every partition of each, in order."""
    existing, later = (f"test-kafka-metadata-{uuid.uuid4().hex[:8]}" for _ in range(2))
    await admin.create_topics([NewTopic(existing, 2, 1)])
    waiting = asyncio.create_task(wait_for_partitions(consumer, [existing, later]))
    await asyncio.sleep(TOPICS_POLL_SECONDS * 1.5)
    assert not waiting.done(), "answered before the second topic existed"
    await admin.create_topics([NewTopic(later, 3, 1)])
    found = await asyncio.wait_for(waiting, timeout=30)
    assert found == [TopicPartition(existing, p) for p in range(2)] + [
        TopicPartition(later, p) for p in range(3)
    ]
