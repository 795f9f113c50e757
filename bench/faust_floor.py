"""Benchmark: the floor under any Faust agent. How fast the simplest Faust agents move
the pipeline benchmark's records, against the bare aiokafka loop over the same ones.

The issue's pipeline target is 0.5 x the bare consume -> produce loop. This measures
what that target leaves for the work itself, on this machine and broker, with Faust
as shipped (faust.App; of imptrack only the helper that sets a table key on the
event's partition in a batch, app.compat.table_writes), in batches of 1,000 (``take_events``):

- ``forward``: decode each record and produce it again, nothing else (what the bare
  loop does, in a Faust agent);
- ``table``: the same, plus one table write per record (a changelogged in-memory
  table: the write and its changelog record, no RocksDB);

each run by a Faust worker of its own over a topic filled beforehand, timed from its
first output record to its last (record timestamps); the bare loop
(bench.pipeline.bare_round) reads the same topic. Alternating, 3 rounds (1 in QUICK),
medians. Reported, not judged: the floor is what the target is checked against.

    python -m bench.faust_floor          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.ops.stack import Stack
from bench.common import QUICK, bench_stack, figure, fill_topic, machine, median, write_result
from bench.pipeline import bare_round, impressions

N = 3_000 if QUICK else 30_000
ROUNDS = 1 if QUICK else 3
PARTITIONS = 4
BATCH = 1_000
MODES = ("forward", "table")


async def _output_span(broker: str, topic: str, count: int, wait_s: float) -> dict[str, Any]:
    """Wait for ``count`` records on ``topic``; the span of their timestamps."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        seen, first, last = 0, 0, 0
        deadline = time.monotonic() + wait_s
        while seen < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batch.values():
                for m in messages:
                    seen += 1
                    first = min(first or m.timestamp, m.timestamp)
                    last = max(last, m.timestamp)
    finally:
        await consumer.stop()
    seconds = max(0.001, (last - first) / 1000)
    return {"records": seen, "seconds": round(seconds, 3), "per_s": round(seen / seconds)}


def _faust_round(stack: Stack, mode: str, records: list[tuple[str, bytes]]) -> dict[str, Any]:
    broker = stack.settings.broker
    topic = f"floor-{mode}-{uuid.uuid4().hex[:8]}"
    asyncio.run(fill_topic(broker, topic, records, PARTITIONS))
    worker = subprocess.Popen(
        [sys.executable, "-m", "bench.faust_floor", "--worker", broker, topic, mode],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ | {"FLOOR_DATADIR": str(stack.settings.home / topic)},
    )
    try:
        span = asyncio.run(_output_span(broker, f"{topic}-out", len(records), 300))
        if worker.poll() is not None:
            raise RuntimeError(f"the Faust worker exited with {worker.returncode}")
        return span | {"mode": mode}
    finally:
        worker.terminate()
        worker.wait(30)


def _bare_round(stack: Stack, records: list[tuple[str, bytes]]) -> dict[str, Any]:
    broker = stack.settings.broker
    topic = f"floor-bare-{uuid.uuid4().hex[:8]}"
    asyncio.run(fill_topic(broker, topic, records, PARTITIONS))
    starts = {TopicPartition(topic, p): 0 for p in range(PARTITIONS)}
    return asyncio.run(bare_round(broker, {k.encode() for k, _ in records}, starts))


def run(stack: Stack) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], **{mode: [] for mode in MODES}}
    order = ["bare", *MODES]
    for n in range(ROUNDS):
        for name in order if n % 2 == 0 else reversed(order):
            records = impressions(N)
            if name == "bare":
                runs[name].append(_bare_round(stack, records))
            else:
                runs[name].append(_faust_round(stack, name, records))
    bare = median(runs["bare"], "per_s")
    checks = {f"{name}_all": all(r["records"] == N for r in rs) for name, rs in runs.items()}
    result = {
        "benchmark": "faust_floor",
        "figures": [
            figure(
                f"faust agent, {mode} records/s",
                median(runs[mode], "per_s"),
                "records/s",
                baseline=bare,
                target="reported (the floor under the 0.5 x bare pipeline target)",
                met=None,
            )
            for mode in MODES
        ],
        "details": {"ok": all(checks.values()), "checks": checks, "runs": runs, "records": N},
    }
    path = write_result("faust_floor", result | {"quick": QUICK, "machine": machine()})
    print(f"written: {path}")
    return result


def _worker(broker: str, topic: str, mode: str) -> None:
    """The Faust worker of one round (its own process and app id, in-memory tables)."""
    import faust
    import orjson

    from app.compat.table_writes import write_in_event_partition

    app = faust.App(
        f"floor-{topic}",
        broker=f"kafka://{broker}",
        store="memory://",
        datadir=os.environ["FLOOR_DATADIR"],
        topic_partitions=PARTITIONS,
        topic_replication_factor=1,
        producer_acks=-1,
        producer_linger_ms=5,
        consumer_auto_offset_reset="earliest",
        web_enabled=False,
    )
    source = app.topic(topic, key_type=bytes, value_type=bytes, value_serializer="raw")
    out = app.topic(f"{topic}-out", key_type=bytes, value_type=bytes, value_serializer="raw")
    table = app.Table(
        "seen",
        schema=faust.Schema(
            key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        ),
    )

    @app.agent(source)
    async def forward(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=0.05):
            sent = []
            for event in events:
                value = orjson.dumps(orjson.loads(event.value))
                if mode == "table":
                    # Faust's own way to set a key on the event's partition, which
                    # batch iteration leaves unset (see app.compat.table_writes).
                    write_in_event_partition(event, table, event.key, value)
                sent.append(await out.send(key=event.key, value=value))
            await asyncio.gather(*sent)

    sys.argv = ["faust-floor", "worker", "--loglevel", "warn", "--without-web"]
    app.main()


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        _worker(*sys.argv[2:5])
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        with bench_stack() as stack:
            run(stack)
