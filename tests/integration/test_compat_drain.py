"""The worker's drain loop (app/compat/faust_drain.py) on a real Kafka, through the
app the worker runs (build_faust_app): every record reaches its agent in its
partition's order with none skipped, and a worker stopped while records are in
flight is followed by one that resumes where the commits stopped.

The worker of each run is a process of its own (this module, run with ``--worker``):
an agent that takes each record on its own and sends ``run:partition:offset`` to the
same partition of an output topic.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration

PARTITIONS = 4
RECORDS = 4_000
WAIT_SECONDS = 120.0

Seen = dict[int, dict[int, list[int]]]  # run -> partition -> offsets, in output order


async def _fill(broker: str, topic: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, PARTITIONS, 1) for name in (topic, f"{topic}-out")]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [
            await producer.send(topic, b"%d" % n, key=b"%d" % n, partition=n % PARTITIONS)
            for n in range(RECORDS)
        ]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def _read_until(broker: str, topic: str, done: Any) -> Seen:
    """The output so far, read until ``done(seen)`` or WAIT_SECONDS."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest")
    await consumer.start()
    seen: Seen = defaultdict(lambda: defaultdict(list))
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(PARTITIONS)])
        deadline = time.monotonic() + WAIT_SECONDS
        while not done(seen) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for record in records:
                    run, partition, offset = map(int, record.value.split(b":"))
                    seen[run][partition].append(offset)
    finally:
        await consumer.stop()
    return seen


def _worker(stack: RunningStack, topic: str, run: int) -> subprocess.Popen[bytes]:
    env = stack.stack.env | {
        "IMPTRACK_HOME": str(stack.settings.home),
        "DRAIN_TEST_DATA": str(stack.settings.home / f"{topic}-{run}"),
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.test_compat_drain", "--worker", topic, str(run)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _handed(seen: Seen) -> int:
    return sum(len(offsets) for partitions in seen.values() for offsets in partitions.values())


def test_a_worker_stopped_mid_stream_is_followed_by_one_that_skips_nothing(
    running_stack: RunningStack,
) -> None:
    """Run 1 is stopped (SIGTERM, as `imptrack down` does) with records in flight; run
    2 takes over. Each run hands its partitions' records on in order, one offset
    after another; run 2 starts on each partition no later than where run 1 stopped,
    and every record is handed on."""
    broker = running_stack.settings.broker
    topic = f"test-compat-drain-{uuid.uuid4().hex[:8]}"
    out = f"{topic}-out"
    asyncio.run(_fill(broker, topic))

    first = _worker(running_stack, topic, 1)
    try:
        asyncio.run(_read_until(broker, out, lambda seen: _handed(seen) >= RECORDS // 4))
    finally:
        first.terminate()
        first.wait(60)
    second = _worker(running_stack, topic, 2)
    try:
        per_partition = RECORDS // PARTITIONS

        def complete(seen: Seen) -> bool:
            last = {p: max(seen[2][p], default=-1) for p in range(PARTITIONS)}
            return all(offset == per_partition - 1 for offset in last.values())

        seen = asyncio.run(_read_until(broker, out, complete))
    finally:
        second.terminate()
        second.wait(60)

    assert seen[1], "the first worker handed nothing on before it was stopped"
    for partition in range(PARTITIONS):
        first_run, second_run = seen[1][partition], seen[2][partition]
        assert _one_after_another(first_run, starting=0), (partition, first_run)
        assert second_run, f"the second worker handed nothing of partition {partition} on"
        resumed = second_run[0]
        assert _one_after_another(second_run, starting=resumed), (partition, second_run)
        assert resumed <= len(first_run), f"offsets {len(first_run)}..{resumed - 1} skipped"
        assert second_run[-1] == per_partition - 1, partition


def _one_after_another(offsets: list[int], starting: int) -> bool:
    return offsets == list(range(starting, starting + len(offsets)))


def _run_worker(topic: str, run: int) -> None:
    """The worker of one run: the app the worker runs, one agent, each record alone."""
    from app.settings import Settings
    from app.streams.faust_app import Role, build_faust_app

    settings = Settings.from_env()
    role = Role(
        f"test-compat-drain-{topic}",
        Path(os.environ["DRAIN_TEST_DATA"]),
        settings.worker_web_port,
        settings.processing_guarantee,
    )
    app = build_faust_app(settings, role)
    source = app.topic(topic, key_type=bytes, value_type=bytes, value_serializer="raw")
    out = app.topic(f"{topic}-out", key_type=bytes, value_type=bytes, value_serializer="raw")

    @app.agent(source)
    async def hand_on(stream: Any) -> None:
        async for event in stream.events():
            message = event.message
            value = f"{run}:{message.partition}:{message.offset}".encode()
            await out.send(key=message.key, value=value, partition=message.partition)

    sys.argv = ["test-compat-drain", "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _run_worker(sys.argv[2], int(sys.argv[3]))
