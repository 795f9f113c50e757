"""Reading ``unreadable-records`` (app.events.dead_letters) back in the tests of
the processes that set records aside there."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from app.events import dead_letters

SetAside = dict[bytes, tuple[bytes, dict[str, str]]]
"""Records set aside by key: each one's value and headers (decoded)."""


async def unreadable_records(broker: str) -> list[ConsumerRecord]:
    """Every record on unreadable-records up to its end offsets when asked."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(dead_letters.TOPIC) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(dead_letters.TOPIC) or set()
        tps = [TopicPartition(dead_letters.TOPIC, p) for p in sorted(partitions)]
        assert tps, "unreadable-records does not exist"
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        found: list[ConsumerRecord] = []
        while [await consumer.position(tp) for tp in tps] != [ends[tp] for tp in tps]:
            for messages in (await consumer.getmany(timeout_ms=1000)).values():
                found += messages
        return found
    finally:
        await consumer.stop()


async def set_aside(broker: str, keys: set[bytes], within_s: float) -> SetAside:
    """The records of ``keys`` on unreadable-records, once all are there or
    ``within_s`` seconds have passed (then those found)."""
    deadline = time.monotonic() + within_s
    while True:
        found = {
            m.key: (m.value, {name: value.decode() for name, value in m.headers})
            for m in await unreadable_records(broker)
            if m.key in keys
        }
        if found.keys() == keys or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)
