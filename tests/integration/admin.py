"""Calling the admin API and reading the catalog topic, for the integration tests."""

from __future__ import annotations

from typing import Any

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.events import kinds
from tests.integration.conftest import RunningStack


class Admin:
    """``/api/v1`` of the stack under test, with its API key."""

    def __init__(self, stack: RunningStack, session: aiohttp.ClientSession) -> None:
        self.base = f"{stack.edge_url}/api/v1"
        self.headers = stack.api_headers
        self.session = session

    async def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else aiohttp.JsonPayload(body))
        async with self.session.request(
            method, self.base + path, data=data, headers=self.headers
        ) as response:
            return response.status, await response.json()

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        status, answer = await self.call(method, path, body)
        assert status in (200, 201), (status, answer)
        return answer


async def catalog_records(bootstrap: str) -> int:
    """How many records the catalog topic holds, read to its true end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(kinds.CATALOG_TOPIC, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        count = 0
        while batch := await consumer.getmany(tp, timeout_ms=500):
            count += sum(len(messages) for messages in batch.values())
        return count
    finally:
        await consumer.stop()


async def topic_keys(bootstrap: str, topic: str) -> list[str]:
    """The keys of every event on ``topic``, all partitions, read to their true end
    (for telling where a lost event went missing): of a kind carried in envelopes,
    each event's ID in them rather than the record's key."""
    kind = next((k for k in kinds.EVENTS if k.topic == topic), None)
    enveloped = kind.envelope if kind is not None and kind.key is not None else None
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    keys = []
    try:
        while batch := await consumer.getmany(timeout_ms=1000):
            for messages in batch.values():
                if enveloped is None or kind is None:
                    keys += [m.key.decode() for m in messages]
                    continue
                for message in messages:
                    keys += enveloped.decode(message.value)[str(kind.key)]
    finally:
        await consumer.stop()
    return keys


async def where_lost(bootstrap: str, topic: str, keys: set[str]) -> dict[str, object]:
    """For events missing downstream: per partition of ``topic``, how many of them it
    holds, the first one's offset, the partition's end, and the worker group's
    committed offset (a committed offset past them means they were skipped)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    found: dict[int, list[int]] = {}
    ends: dict[int, int] = {}
    try:
        while batch := await consumer.getmany(timeout_ms=1000):
            for tp, messages in batch.items():
                ends[tp.partition] = messages[-1].offset + 1
                for m in messages:
                    if m.key.decode() in keys:
                        found.setdefault(tp.partition, []).append(m.offset)
    finally:
        await consumer.stop()
    group = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id="imptrack")
    await group.start()
    try:
        committed = {p: await group.committed(TopicPartition(topic, p)) for p in ends}
    finally:
        await group.stop()
    return {
        p: {
            "missing": len(offsets),
            "first": min(offsets),
            "last": max(offsets),
            "end": ends.get(p),
            "committed": committed.get(p),
        }
        for p, offsets in sorted(found.items())
    }


async def busiest_partition_leader(bootstrap: str, topic: str) -> tuple[int, int]:
    """The partition of ``topic`` holding the most records, and the node leading it."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await admin.start()
    await consumer.start()
    try:
        (described,) = await admin.describe_topics([topic])
        leaders = {p["partition"]: p["leader"] for p in described["partitions"]}
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in leaders])
        busiest = max(ends, key=lambda tp: ends[tp]).partition
        return busiest, int(leaders[busiest])
    finally:
        await consumer.stop()
        await admin.close()
