"""Finding a topic's partitions for consumers that assign them by hand."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

log = logging.getLogger("imptrack")

RETRY_SECONDS = 1.0


async def wait_for_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str]
) -> list[TopicPartition]:
    """Every partition of ``topics``, waiting until all of them exist (a process may
    start before ``imptrack up`` created them)."""
    topics = tuple(topics)
    while True:
        await consumer._client.force_metadata_update()
        found = []
        for topic in topics:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                break
            found += [TopicPartition(topic, p) for p in sorted(partitions)]
        else:
            return found
        log.info("waiting for topics %s to exist", ", ".join(topics))
        await asyncio.sleep(RETRY_SECONDS)
