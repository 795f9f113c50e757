"""What the broker knows of topics and of the cluster, asked through an aiokafka
client where aiokafka has no public call for it. Written for aiokafka 0.14.0
(app/compat/patches.py: ``WAIT_FOR_PARTITIONS``, ``CLUSTER_ID``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.protocol.metadata import MetadataRequest

from app.exceptions import ImptrackError

log = logging.getLogger("imptrack")

TOPICS_POLL_SECONDS = 1.0


async def wait_for_partitions(
    consumer: AIOKafkaConsumer, topics: Iterable[str]
) -> list[TopicPartition]:
    """Every partition of ``topics``, waiting until all of them exist (a process may
    start before ``imptrack up`` created them), for a consumer that assigns them by
    hand."""
    topics = tuple(topics)
    while True:
        # partitions_for_topic reads only the client's metadata, which nothing public
        # refreshes for a consumer that subscribes to nothing.
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
        await asyncio.sleep(TOPICS_POLL_SECONDS)


async def cluster_id(client: Any) -> str:
    """The cluster id the broker reports (metadata v2 and later), via an aiokafka client."""
    node_id = client.get_random_node()
    response = await client.send(node_id, MetadataRequest([]))
    found = getattr(response, "cluster_id", None)
    if not found:
        raise ImptrackError("the broker reports no cluster id (Kafka metadata v2 or later needed)")
    return str(found)
