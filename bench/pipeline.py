"""Benchmark: impressions through the worker, end to end on Apache Kafka, against
three baselines run beside it in every round.

The system: N impressions in envelopes of ENVELOPE (200) as the edge writes them
(app.edge.envelope_writer: one Kafka record per envelope, keyed by its envelope key,
on its partition, the partitions in turn) go to the ``impressions`` topic, for an
offer with a CPM price and an impressions destination URL: each impression is
judged, its envelope written to the impressions table, emitted to
``impressions-recorded`` and given forward tasks (the forwarder delivers them to a
local sink meanwhile, in its own process), and indexed for clicks. Measured from
the first to the last record the worker emits for them to ``impressions-recorded``
(record timestamps), counting the impressions inside the envelopes.

The baselines, in each round, on the same broker:

- **bare**: a plain aiokafka loop over the same N impressions one per record (a
  topic filled beforehand): decode each, produce one record per input with acks
  from all replicas, commit. From its first record read to its last produce
  acknowledged. Target: the pipeline >= 1.5 x this.
- **bare envelopes**: the same loop over the very envelope records the worker read:
  decode each envelope, encode it again, produce one record per input (acks=all),
  commit; impressions/s. Target: the pipeline >= 0.5 x this.
- **quix**: the Quix Streams peer (bench.quix_peer), per record with one
  ``state.set``, over the N impressions one per record. Target: >= 1.0 x this.

Alternating, 3 rounds (1 in QUICK), medians.

    python -m bench.pipeline          # QUICK=1 for a smoke run
    PIPELINE_IMPRESSIONS=10000 PIPELINE_ROUNDS=2 PIPELINE_ENVELOPE=50 python -m bench.pipeline
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.compat.kafka_metadata import wait_for_partitions
from app.events import kinds
from app.events.records import impression_payload
from app.ids import IdGenerator, IdSeal
from app.ops.stack import Stack
from bench.common import (
    QUICK,
    bench_stack,
    figure,
    fill_topic,
    machine,
    sink_with_catalog,
    write_result,
)
from bench.quix_peer import quix_round

N = int(os.environ.get("PIPELINE_IMPRESSIONS") or (3_000 if QUICK else 30_000))
ENVELOPE = int(os.environ.get("PIPELINE_ENVELOPE") or 200)
ROUNDS = int(os.environ.get("PIPELINE_ROUNDS") or (1 if QUICK else 3))
TARGET_BARE = 1.5
TARGET_BARE_ENVELOPES = 0.5
TARGET_PEER = 1.0
OFFER_ID = 300
BARE_TOPIC = "bench-bare-out"
PARTITIONS = 4  # of the per-record topics the bare loop and the peer read
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"
_ACCEPTED = kinds.IMPRESSIONS.enveloped
_RECORDED = kinds.RECORDED_IMPRESSIONS.enveloped


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


def impression_row(n: int) -> dict[str, Any]:
    """The benchmark's ``n``th impression as the edge puts it in an envelope."""
    return impression_payload(
        offer_id=OFFER_ID,
        pid=300,
        imp_id=f"i{n}",
        subs={"sub1": f"placement-{n % 5}"},
        ua=UA,
        ip=f"203.0.{(n >> 8) & 255}.{n & 255}",
    )


def impressions(count: int, seal: IdSeal = _ANY_KEY) -> list[tuple[str, bytes]]:
    """``count`` new impressions as (aimp_id, its JSON), one per record: the input of
    the per-record baselines (bench.faust_floor, the bare loop, the peer)."""
    ids = IdGenerator(seal)
    out = []
    for n in range(count):
        aimp_id = ids.new_id()
        out.append((aimp_id, orjson.dumps(impression_row(n) | {"aimp_id": aimp_id})))
    return out


@dataclass(frozen=True)
class EnvelopeRecord:
    """One envelope of impressions as the edge produces it."""

    key: str
    partition: int
    value: bytes
    aimp_ids: tuple[str, ...]


def envelopes(
    count: int, partitions: int, seal: IdSeal = _ANY_KEY, size: int = ENVELOPE
) -> list[EnvelopeRecord]:
    """``count`` new impressions in envelopes of ``size`` as the edge writes them: each
    envelope's IDs made for its partition (the partitions in turn) and sealed with
    ``seal``, the stack's own key where a postback will name them."""
    ids = IdGenerator(seal)
    out: list[EnvelopeRecord] = []
    for start in range(0, count, size):
        opened = ids.open_envelope(len(out) % partitions)
        rows = [
            impression_row(n) | {"aimp_id": opened.id(slot)}
            for slot, n in enumerate(range(start, min(start + size, count)))
        ]
        value = _ACCEPTED.current.encode_rows(rows)
        aimp_ids = tuple(row["aimp_id"] for row in rows)
        out.append(EnvelopeRecord(opened.key, opened.partition, value, aimp_ids))
    return out


async def topic_partitions(broker: str, topic: str) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=broker)
    await producer.start()
    try:
        return len(await producer.partitions_for(topic))
    finally:
        await producer.stop()


async def produce(broker: str, records: Iterable[EnvelopeRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=2)
    await producer.start()
    try:
        acks = [
            await producer.send(
                kinds.IMPRESSIONS.topic,
                value=r.value,
                key=r.key.encode(),
                partition=r.partition,
            )
            for r in records
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


async def system_round(broker: str, records: list[EnvelopeRecord]) -> dict[str, Any]:
    """Produce the envelopes and read the worker's recorded envelopes for them; the
    seconds from its first output record to its last (record timestamps, set when
    the worker emits), and the impressions found in them."""
    wanted = {aimp_id for r in records for aimp_id in r.aimp_ids}
    starts = await end_offsets(broker, kinds.RECORDED_IMPRESSIONS.topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        producing = asyncio.create_task(produce(broker, records))
        seen: set[str] = set()
        first = last = 0
        deadline = time.monotonic() + 300
        while len(seen) < len(wanted) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batch.values():
                for m in messages:
                    ours = wanted.intersection(_RECORDED.decode(m.value)["aimp_id"])
                    if ours - seen:
                        seen |= ours
                        first = min(first or m.timestamp, m.timestamp)
                        last = max(last, m.timestamp)
        await producing
    finally:
        await consumer.stop()
    seconds = max(0.001, (last - first) / 1000)
    return {
        "impressions": len(wanted),
        "envelopes": len(records),
        "recorded": len(seen),
        "seconds": round(seconds, 3),
        "per_s": round(len(seen) / seconds),
    }


async def bare_round(
    broker: str, keys: set[bytes], starts: dict[TopicPartition, int]
) -> dict[str, Any]:
    """Consume the records of ``keys`` from the topic partitions of ``starts``, from
    those offsets, decode each, produce one per input (acks=all) and commit; seconds
    from the first read to the last ack. (The broker may state end offsets a little
    low, so records before the round's can come first; they are skipped.)"""

    def again(m: ConsumerRecord) -> tuple[bytes, int | None, int]:
        return orjson.dumps(orjson.loads(m.value)), None, 1

    done, _, seconds = await _bare_loop(broker, keys, starts, again)
    return {"records": done, "seconds": round(seconds, 3), "per_s": round(done / seconds)}


async def bare_envelope_round(
    broker: str, records: list[EnvelopeRecord], starts: dict[TopicPartition, int]
) -> dict[str, Any]:
    """The bare loop over envelopes: read ``records`` (already on ``impressions``) from
    ``starts``, decode each envelope, encode it again and produce it on its partition
    (acks=all), commit; impressions/s from the first read to the last ack."""

    def again(m: ConsumerRecord) -> tuple[bytes, int | None, int]:
        envelope = _ACCEPTED.decode(m.value)
        value = envelope.format.encode([envelope[f] for f in envelope.format.fields])
        return value, m.partition, len(envelope)

    keys = {r.key.encode() for r in records}
    done, impressions_done, seconds = await _bare_loop(broker, keys, starts, again)
    return {
        "records": done,
        "impressions": impressions_done,
        "seconds": round(seconds, 3),
        "per_s": round(impressions_done / seconds),
    }


async def _bare_loop(
    broker: str,
    keys: set[bytes],
    starts: dict[TopicPartition, int],
    again: Callable[[ConsumerRecord], tuple[bytes, int | None, int]],
) -> tuple[int, int, float]:
    """A plain consume -> produce loop over the records of ``keys``: ``again`` makes
    each output (its value, its partition or None, the impressions it holds); commits
    after each fetch's acks. Records and impressions done, and the seconds from the
    first read to the last ack."""
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
        done = impressions_done = 0
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
                    value, partition, held = again(m)
                    acks.append(
                        await producer.send(BARE_TOPIC, value=value, key=m.key, partition=partition)
                    )
                    done += 1
                    impressions_done += held
            if batch:
                await asyncio.gather(*acks)
                acks = []
                await consumer.commit()
        seconds = time.perf_counter() - began
    finally:
        await producer.stop()
        await consumer.stop()
    return done, impressions_done, seconds


async def per_record_round(broker: str, records: list[tuple[str, bytes]]) -> dict[str, Any]:
    """The bare loop over ``records``, one impression each, on a topic of their own
    filled beforehand (the worker reads envelopes only)."""
    topic = f"bench-bare-{uuid.uuid4().hex[:8]}"
    await fill_topic(broker, topic, records, PARTITIONS)
    starts = {TopicPartition(topic, p): 0 for p in range(PARTITIONS)}
    return await bare_round(broker, {k.encode() for k, _ in records}, starts)


async def _ensure_bare_topic(broker: str, partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        if BARE_TOPIC not in await admin.list_topics():
            await admin.create_topics([NewTopic(BARE_TOPIC, partitions, 1)])
    finally:
        await admin.close()


async def _measure(broker: str) -> dict[str, list[dict[str, Any]]]:
    partitions = await topic_partitions(broker, kinds.IMPRESSIONS.topic)
    await _ensure_bare_topic(broker, partitions)
    runs: dict[str, list[dict[str, Any]]] = {
        "worker": [],
        "bare": [],
        "bare_envelopes": [],
        "quix": [],
    }
    await system_round(broker, envelopes(1_000, partitions))
    for n in range(ROUNDS):
        sent = envelopes(N, partitions)
        one_each = impressions(N)

        async def worker(sent: list[EnvelopeRecord] = sent) -> None:
            starts = await end_offsets(broker, kinds.IMPRESSIONS.topic)
            runs["worker"].append(await system_round(broker, sent))
            runs["bare_envelopes"].append(await bare_envelope_round(broker, sent, starts))

        async def bare(one_each: list[tuple[str, bytes]] = one_each) -> None:
            runs["bare"].append(await per_record_round(broker, one_each))

        async def quix(one_each: list[tuple[str, bytes]] = one_each) -> None:
            runs["quix"].append(await quix_round(broker, one_each))

        # Alternating: the first to run alternates by round.
        order = (worker, bare, quix) if n % 2 == 0 else (quix, bare, worker)
        for step in order:
            await step()
    return runs


def _median(runs: list[dict[str, Any]]) -> float:
    return float(statistics.median(r["per_s"] for r in runs))


def run(stack: Stack) -> dict[str, Any]:
    with sink_with_catalog(stack, catalog):
        runs = asyncio.run(_measure(stack.settings.broker))
    worker = _median(runs["worker"])
    bare = _median(runs["bare"])
    bare_envelopes = _median(runs["bare_envelopes"])
    quix = _median(runs["quix"])
    return {
        "benchmark": "pipeline",
        "figures": [
            figure(
                "pipeline impressions/s (worker, end to end)",
                worker,
                "imp/s",
                baseline=bare,
                target=f">= {TARGET_BARE} x the bare per-record consume-produce loop",
                met=None if QUICK else worker >= TARGET_BARE * bare,
            ),
            figure(
                "pipeline impressions/s against the peer (Quix Streams, per record)",
                worker,
                "imp/s",
                baseline=quix,
                target=f">= {TARGET_PEER} x a Quix Streams stateful per-record app (issue 23)",
                met=None if QUICK else worker >= TARGET_PEER * quix,
            ),
            figure(
                f"pipeline impressions/s against a bare envelope loop (envelopes of {ENVELOPE})",
                worker,
                "imp/s",
                baseline=bare_envelopes,
                target=f">= {TARGET_BARE_ENVELOPES} x the bare envelope loop of the same N",
                met=None if QUICK else worker >= TARGET_BARE_ENVELOPES * bare_envelopes,
            ),
        ],
        "details": {
            "impressions_per_round": N,
            "envelope": ENVELOPE,
            "rounds": ROUNDS,
            "runs": runs,
            "ok": all(r["recorded"] == r["impressions"] for r in runs["worker"])
            and all(r["impressions"] == N for r in runs["bare_envelopes"])
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
