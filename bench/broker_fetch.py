"""Benchmark: what one fetch costs the embedded broker as a partition fills up.

The soak (``make soak``) saw every consumer fall slowly behind and the edge's p99
climb while the broker's CPU rose to a full core, at a steady request rate. This
measures the broker alone, no imptrack process running: a one-partition topic is
filled with batches of 10 records, and at each size the newest batch is fetched
again and again (seek to its offset, one fetch, no wait) by a plain aiokafka
consumer. Tansu 0.6.0's memory storage lists every batch the partition holds on
each fetch (``DynoStore::fetch``), so the time grows with the batches stored, and
it keeps them all (no retention; ``DeleteRecords`` is not implemented). The ratio
is against the fetch from the smallest partition, on the same broker in the same
run. Reported, not judged; not part of ``make bench``.

    python -m bench.broker_fetch        # QUICK=1 for a smoke run
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.stack import isolated_stack
from bench.common import QUICK, machine, write_result

BATCH_RECORDS = 10
RECORD = b"x" * 300  # about an impression's JSON
SIZES_IN_BATCHES = (100, 1_000, 5_000) if QUICK else (100, 1_000, 5_000, 10_000, 20_000)
FETCHES = 50
TOPIC = "broker-fetch"


async def _fill_to(producer: AIOKafkaProducer, batches: int, stored: int) -> int:
    while stored < batches:
        batch = producer.create_batch()
        for _ in range(BATCH_RECORDS):
            batch.append(key=None, value=RECORD, timestamp=None)
        batch.close()
        # One batch at a time, so each is stored as a batch of its own.
        await (await producer.send_batch(batch, TOPIC, partition=0))
        stored += 1
    return stored


async def _fetch_newest(consumer: AIOKafkaConsumer, batches: int) -> float:
    """Median seconds to fetch the newest batch (the broker keeps batches whole: a
    fetch must start at a batch's first offset)."""
    tp = TopicPartition(TOPIC, 0)
    newest = (batches - 1) * BATCH_RECORDS
    times = []
    for _ in range(FETCHES):
        consumer.seek(tp, newest)
        start = time.perf_counter()
        fetched = await consumer.getmany(tp, timeout_ms=10_000)
        times.append(time.perf_counter() - start)
        if not fetched.get(tp):
            raise RuntimeError(f"no records at offset {newest}")
    return statistics.median(times)


async def measure(broker: str) -> list[dict[str, Any]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=0)
    # A fetch wait of 0 is never answered by the embedded broker. The newest batch is
    # there, so a fetch returns with it without waiting.
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker, enable_auto_commit=False, fetch_max_wait_ms=10
    )
    await producer.start()
    await consumer.start()
    consumer.assign([TopicPartition(TOPIC, 0)])
    rows = []
    stored = 0
    try:
        for batches in SIZES_IN_BATCHES:
            stored = await _fill_to(producer, batches, stored)
            seconds = await _fetch_newest(consumer, batches)
            rows.append({"batches": batches, "fetch_ms": round(1000 * seconds, 3)})
            print(
                f"{batches:>7,} batches stored: a fetch takes {1000 * seconds:7.2f} ms", flush=True
            )
    finally:
        await producer.stop()
        await consumer.stop()
    base = rows[0]["fetch_ms"]
    for row in rows:
        row["x_smallest"] = round(row["fetch_ms"] / base, 1)
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="imptrack-bench-") as home:
        stack = isolated_stack(Path(home))
        stack.start_together(["broker"])
        try:
            rows = asyncio.run(measure(stack.settings.broker))
        finally:
            stack.down()
    # Cost per stored batch: the slope between the smallest and the largest size.
    first, last = rows[0], rows[-1]
    per_batch_us = (
        1000 * (last["fetch_ms"] - first["fetch_ms"]) / (last["batches"] - first["batches"])
    )
    result = {
        "benchmark": "broker_fetch",
        "records_per_batch": BATCH_RECORDS,
        "fetches_per_size": FETCHES,
        "rows": rows,
        "us_per_stored_batch": round(per_batch_us, 3),
        "machine": machine(),
    }
    print(f"about {per_batch_us:.2f} us more per fetch for every batch the partition holds")
    write_result("broker_fetch", result)


if __name__ == "__main__":
    main()
