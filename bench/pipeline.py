"""Benchmark: impressions through the worker, end to end on Apache Kafka,
against a bare aiokafka consume -> produce loop over the same messages.

The system: N impressions, as the edge produces them, go to the ``impressions`` topic
(an offer with an impressions destination URL, so each one is judged, written to the
impressions table, emitted for export and given a forward task; the forwarder
delivers them to a local sink meanwhile, in its own process). Measured from the first
to the last record the worker emits for them to ``impressions-recorded``.

The bare loop: a plain aiokafka consumer reads the same N records, decodes each and
produces one record per input with acks from all replicas, like the worker's emit,
and commits its offsets. Measured from its first record read to its last produce
acknowledged. Alternating, 3 rounds (1 in QUICK), medians. Target: >= 0.5 x bare.

    python -m bench.pipeline          # QUICK=1 for a smoke run
    PIPELINE_IMPRESSIONS=10000 PIPELINE_ROUNDS=2 python -m bench.pipeline
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
from collections.abc import Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.compat.kafka_metadata import wait_for_partitions
from app.events import kinds
from app.events.records import impression_payload
from app.ids import IdGenerator, IdSeal
from app.ops.stack import Stack
from bench.common import QUICK, bench_stack, figure, machine, sink_with_catalog, write_result
from bench.quix_peer import quix_round

N = int(os.environ.get("PIPELINE_IMPRESSIONS") or (3_000 if QUICK else 30_000))
ROUNDS = int(os.environ.get("PIPELINE_ROUNDS") or (1 if QUICK else 3))
TARGET_RATIO = 0.5
OFFER_ID = 300
BARE_TOPIC = "bench-bare-out"
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"


def catalog(sink_port: int) -> str:
    return f"""
advertisers: [{{id: 300, name: Bench advertiser}}]
affiliates: [{{id: 300, name: Bench affiliate}}]
offers:
  - id: {OFFER_ID}
    title: Bench pipeline offer
    advertiser_id: 300
    allow_impressions: true
    impressions_url: "http://127.0.0.1:{sink_port}/imp?a={{aimp_id}}"
    payments: [{{type: CPM, revenue: "2.00", payout: "1.40"}}]
"""


_ANY_KEY = IdSeal(os.urandom(32))


def impressions(count: int, seal: IdSeal = _ANY_KEY) -> list[tuple[str, bytes]]:
    """``count`` new impressions as (aimp_id, the JSON the edge produces), their IDs
    sealed with ``seal``: the stack's own key where a postback will name them."""
    ids = IdGenerator(seal)
    out = []
    for n in range(count):
        aimp_id = ids.new_id()
        payload = impression_payload(
            offer_id=OFFER_ID,
            pid=300,
            imp_id=f"i{n}",
            subs={"sub1": f"placement-{n % 5}"},
            ua=UA,
            ip=f"203.0.{(n >> 8) & 255}.{n & 255}",
        )
        payload["aimp_id"] = aimp_id
        out.append((aimp_id, orjson.dumps(payload)))
    return out


async def produce(broker: str, records: Iterable[tuple[str, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5)
    await producer.start()
    try:
        acks = [
            await producer.send(kinds.IMPRESSIONS.topic, value=value, key=key.encode())
            for key, value in records
        ]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


async def end_offsets(broker: str, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=broker)
    await consumer.start()
    try:
        # Not partitions_for_topic alone: a fresh consumer may not have the topic's
        # metadata yet, and an empty answer made a round read nothing for 300 s.
        tps = await wait_for_partitions(consumer, [topic])
        return dict(await consumer.end_offsets(tps))
    finally:
        # aiokafka 0.14 lets the cancellation of its own committed-offsets task escape
        # stop() when a consumer without a group stops right after it started (seen
        # on Kafka in the QUICK run); that cancellation is not ours.
        with contextlib.suppress(asyncio.CancelledError):
            await consumer.stop()


async def system_round(broker: str, records: list[tuple[str, bytes]]) -> dict[str, Any]:
    """Produce the records and read the worker's output for them; the seconds from its
    first output record to its last (record timestamps, set when the worker emits)."""
    wanted = {key.encode() for key, _ in records}
    starts = await end_offsets(broker, kinds.RECORDED_IMPRESSIONS.topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        producing = asyncio.create_task(produce(broker, records))
        seen: set[bytes] = set()
        first = last = 0
        deadline = time.monotonic() + 300
        while len(seen) < len(wanted) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batch.values():
                for m in messages:
                    if m.key in wanted and m.key not in seen:
                        seen.add(m.key)
                        first = min(first or m.timestamp, m.timestamp)
                        last = max(last, m.timestamp)
        await producing
    finally:
        await consumer.stop()
    seconds = max(0.001, (last - first) / 1000)
    return {
        "records": len(records),
        "recorded": len(seen),
        "seconds": round(seconds, 3),
        "per_s": round(len(seen) / seconds),
    }


async def bare_round(
    broker: str, keys: set[bytes], starts: dict[TopicPartition, int]
) -> dict[str, Any]:
    """Consume the records of ``keys`` from ``impressions`` from ``starts``, decode each,
    produce one per input (acks=all) and commit; seconds from the first read to the
    last ack. (The broker may state end offsets a little low, so records before the
    round's can come first; they are skipped.)"""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=broker, group_id=f"bench-bare-{time.time_ns()}", enable_auto_commit=False
    )
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5)
    await consumer.start()
    await producer.start()
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        done = 0
        began = 0.0
        acks = []
        deadline = time.monotonic() + 300
        while done < len(keys) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            began = began or time.perf_counter()
            for messages in batch.values():
                for m in messages:
                    if m.key not in keys:
                        continue
                    event = orjson.loads(m.value)
                    acks.append(
                        await producer.send(BARE_TOPIC, value=orjson.dumps(event), key=m.key)
                    )
                    done += 1
            if batch:
                await asyncio.gather(*acks)
                acks = []
                await consumer.commit()
        seconds = time.perf_counter() - began
    finally:
        await producer.stop()
        await consumer.stop()
    return {"records": done, "seconds": round(seconds, 3), "per_s": round(done / seconds)}


async def _ensure_bare_topic(broker: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        if BARE_TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(BARE_TOPIC, partitions, 1)])
    finally:
        await admin.close()


async def _measure(broker: str) -> dict[str, list[dict[str, Any]]]:
    await _ensure_bare_topic(broker, 4)
    runs: dict[str, list[dict[str, Any]]] = {"worker": [], "bare": [], "quix": []}
    warm = impressions(1_000)
    await system_round(broker, warm)
    for _ in range(ROUNDS):
        records = impressions(N)
        starts = await end_offsets(broker, kinds.IMPRESSIONS.topic)
        runs["worker"].append(await system_round(broker, records))
        keys = {key.encode() for key, _ in records}
        runs["bare"].append(await bare_round(broker, keys, starts))
        runs["quix"].append(await quix_round(broker, records))
    return runs


def run(stack: Stack) -> dict[str, Any]:
    with sink_with_catalog(stack, catalog):
        runs = asyncio.run(_measure(stack.settings.broker))
    worker = float(statistics.median(r["per_s"] for r in runs["worker"]))
    bare = float(statistics.median(r["per_s"] for r in runs["bare"]))
    quix = float(statistics.median(r["per_s"] for r in runs["quix"]))
    return {
        "benchmark": "pipeline",
        "figures": [
            figure(
                "pipeline impressions/s (worker, end to end)",
                worker,
                "imp/s",
                baseline=bare,
                target=f">= {TARGET_RATIO} x bare consume-produce loop",
                met=None if QUICK else worker >= TARGET_RATIO * bare,
            ),
            figure(
                "pipeline impressions/s against the peer (Quix Streams, per record)",
                worker,
                "imp/s",
                baseline=quix,
                target=">= 1.0 x a Quix Streams stateful per-record app (issue 23)",
                met=None if QUICK else worker >= quix,
            ),
        ],
        "details": {
            "impressions_per_round": N,
            "rounds": ROUNDS,
            "runs": runs,
            "ok": all(r["recorded"] == r["records"] for r in runs["worker"])
            and all(r["records"] == N for r in runs["bare"] + runs["quix"]),
        },
    }


def main() -> int:
    with bench_stack() as stack:
        result = run(stack)
    path = write_result("pipeline", result | {"quick": QUICK, "machine": machine()})
    for name, runs in result["details"]["runs"].items():
        print(name, [r["per_s"] for r in runs])
    for f in result["figures"]:
        print(f"{f['name']}: {f['value']:,.0f} vs {f['baseline']:,.0f} ({f['ratio']} x)")
    print(f"written: {path}")
    return 0 if result["details"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
