"""Benchmark: the floor under any Faust agent. How fast the simplest Faust agents move
the pipeline benchmark's records, against the bare aiokafka loop over the same ones.

The issue's pipeline target is 0.5 x the bare consume -> produce loop. This measures
what that target leaves for the work itself, on this machine and broker, in batches
of 1,000 (``take_events``), on two Faust apps:

- ``shipped``: Faust as shipped (faust.App, in-memory tables; of imptrack only the
  helper that sets a table key on the event's partition in a batch,
  app.compat.table_writes);
- ``imptrack``: the app the worker runs (app.streams.faust_app.build_faust_app, so
  every patch of app/compat/, RocksDB tables with their shared budget);

and two agents:

- ``forward``: decode each record and produce it again, nothing else (what the bare
  loop does, in a Faust agent);
- ``table``: the same, plus one table write per record (a changelogged table: the
  write and its changelog record);

each run by a Faust worker of its own (``--loglevel warn``) over a topic filled
beforehand, timed from its first output record to its last (record timestamps); the
bare loop (bench.pipeline.bare_round) reads the same topic. Alternating, 3 rounds
(1 in QUICK), medians. Reported, not judged: the floor is what the target is checked
against.

``FLOOR_BEFORE=/path/to/checkout`` adds the imptrack app of another checkout (say, of
the commit before a change: ``git archive``), run alternating with this one's, so
that both are measured on the same load. Each round also reports the workers' CPU
time per record (µs, from the first output record to the last), which a machine
busy with other work moves much less than the records a second.

``FLOOR_PYSPY=/path/to/py-spy`` samples each worker with py-spy from its first output
record to its last (not a dependency: install it to use it; the figures then pay for
the sampling) and reports where its time went (:func:`profile_shares`); the raw stacks are left in
$TMPDIR/imptrack-faust-floor-profile/.

    python -m bench.faust_floor          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition

from app.ops.stack import Stack
from bench.common import (
    QUICK,
    bench_stack,
    figure,
    fill_topic,
    machine,
    median,
    write_result,
)
from bench.pipeline import bare_round, impressions

N = 3_000 if QUICK else 30_000
ROUNDS = 1 if QUICK else 3
PARTITIONS = 4
BATCH = 1_000
# FLOOR_BEFORE: another checkout (the commit before a change) whose imptrack app runs
# too, alternating with this one's in the same run: before and after on one load.
BEFORE = Path(os.environ["FLOOR_BEFORE"]) if os.environ.get("FLOOR_BEFORE") else None
APPS = ("shipped", "imptrack", *(("before",) if BEFORE else ()))
MODES = ("forward", "table")
WAIT_SECONDS = 900.0
CASES = tuple(f"{app}-{mode}" for app in APPS for mode in MODES)
PROFILES = Path(tempfile.gettempdir()) / "imptrack-faust-floor-profile"

# Where a worker's time goes: each sample is counted under the first part one of
# whose frames is on its stack (py-spy's raw format names a frame "function (path:line)").
PROFILE_PARTS = (
    ("logging (LogRecords built and dropped)", ("(logging/__init__.py",)),
    ("Topic.send and aiokafka's producer", ("Topic.send (faust/topics.py", "(aiokafka/producer/")),
    (
        "the race per record (wait_first, its tasks)",
        ("Service.wait_first (", "Event.wait (asyncio/locks.py", "Event.wait (mode/utils/locks.py"),
    ),
    ("hand-over to the stream (conductor.on_message)", ("on_message (faust/transport/conductor",)),
    ("the drain loop and its fetch", ("_drain_messages (",)),
    ("the agent (take_events, decode, table write)", ("Agent._execute_actor (",)),
    ("aiokafka's consumer thread", ("Thread._bootstrap (",)),
    ("the event loop itself", ("BaseEventLoop._run_once (",)),
)
SAMPLES_PER_SECOND = 200


def _cpu_seconds(pid: int) -> float:
    """CPU time (user and system, every thread) of process ``pid`` so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def _output_span(
    broker: str, topic: str, count: int, wait_s: float, pid: int, profile: Path | None
) -> dict[str, Any]:
    """Wait for ``count`` records on ``topic``; the span of their timestamps, and the
    CPU time process ``pid`` took from the first to the last, per record (µs): on a
    busy machine the span grows with whatever else runs, the CPU time much less.
    With ``profile``, ``pid`` is sampled into it from the first record to the last."""
    consumer = AIOKafkaConsumer(bootstrap_servers=broker, auto_offset_reset="earliest")
    await consumer.start()
    sampler = None
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        seen, first, last = 0, 0, 0
        cpu_first = cpu_last = 0.0
        deadline = time.monotonic() + wait_s
        while seen < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for messages in batch.values():
                for m in messages:
                    seen += 1
                    first = min(first or m.timestamp, m.timestamp)
                    last = max(last, m.timestamp)
            if batch:
                cpu_last = _cpu_seconds(pid)
                cpu_first = cpu_first or cpu_last
                if profile is not None and sampler is None:
                    sampler = _sample(pid, profile)
    finally:
        if sampler is not None:
            sampler.send_signal(signal.SIGINT)  # py-spy writes its samples on SIGINT
            sampler.wait(60)
        await consumer.stop()
    seconds = max(0.001, (last - first) / 1000)
    return {
        "records": seen,
        "seconds": round(seconds, 3),
        "per_s": round(seen / seconds),
        "cpu_us": round((cpu_last - cpu_first) / max(1, seen) * 1e6, 1),
    }


def _faust_round(
    stack: Stack, case: str, records: list[tuple[str, bytes]], profile: Path | None
) -> dict[str, Any]:
    broker = stack.settings.broker
    topic = f"floor-{case}-{uuid.uuid4().hex[:8]}"
    asyncio.run(fill_topic(broker, topic, records, PARTITIONS))
    app, mode = case.split("-")
    worker = subprocess.Popen(
        [sys.executable, "-m", "bench.faust_floor", "--worker", broker, topic]
        + (["imptrack", mode] if app == "before" else [app, mode]),
        # The worker imports imptrack from its working directory.
        cwd=BEFORE if app == "before" else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # The stack's own environment: the imptrack app reads its settings from it.
        env=stack.env
        | {
            "IMPTRACK_HOME": str(stack.settings.home),
            "FLOOR_DATADIR": str(stack.settings.home / topic),
        },
    )
    try:
        out = f"{topic}-out"
        span = asyncio.run(
            _output_span(broker, out, len(records), WAIT_SECONDS, worker.pid, profile)
        )
        if worker.poll() is not None:
            raise RuntimeError(f"the Faust worker exited with {worker.returncode}")
        return span | {"case": case}
    finally:
        worker.terminate()
        worker.wait(30)


def _sample(pid: int, output: Path) -> subprocess.Popen[bytes]:
    output.parent.mkdir(parents=True, exist_ok=True)
    options = ["--pid", str(pid), "--format", "raw", "--output", str(output)]
    return subprocess.Popen(
        [os.environ["FLOOR_PYSPY"], "record", "--rate", str(SAMPLES_PER_SECOND), *options],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def profile_shares(path: Path) -> dict[str, float]:
    """The share of a worker's samples in each of PROFILE_PARTS (%), both threads
    (the event loop's and aiokafka's consumer thread) counted."""
    parts: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        name = next((n for n, frames in PROFILE_PARTS if any(f in stack for f in frames)), "other")
        parts[name] += int(count)
    total = sum(parts.values())
    return {name: round(100 * n / max(1, total), 1) for name, n in parts.most_common()}


def _bare_round(stack: Stack, records: list[tuple[str, bytes]]) -> dict[str, Any]:
    broker = stack.settings.broker
    topic = f"floor-bare-{uuid.uuid4().hex[:8]}"
    asyncio.run(fill_topic(broker, topic, records, PARTITIONS))
    starts = {TopicPartition(topic, p): 0 for p in range(PARTITIONS)}
    cpu = time.process_time()
    result = asyncio.run(bare_round(broker, {k.encode() for k, _ in records}, starts))
    # This process's CPU time, its client's start and stop included.
    return result | {"cpu_us": round((time.process_time() - cpu) / len(records) * 1e6, 1)}


def run(stack: Stack) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"bare": [], **{case: [] for case in CASES}}
    profiles: dict[str, list[dict[str, float]]] = {case: [] for case in CASES}
    sampling = bool(os.environ.get("FLOOR_PYSPY"))
    order = ["bare", *CASES]
    for n in range(ROUNDS):
        for name in order if n % 2 == 0 else reversed(order):
            records = impressions(N)
            if name == "bare":
                runs[name].append(_bare_round(stack, records))
                continue
            profile = PROFILES / f"{name}-{n + 1}.txt" if sampling else None
            runs[name].append(_faust_round(stack, name, records, profile))
            if profile is not None:
                profiles[name].append(profile_shares(profile))
    bare = median(runs["bare"], "per_s")
    checks = {f"{name}_all": all(r["records"] == N for r in rs) for name, rs in runs.items()}
    details: dict[str, Any] = {"ok": all(checks.values()), "checks": checks, "runs": runs}
    if sampling:
        details["profiles"] = profiles
    result: dict[str, Any] = {
        "benchmark": "faust_floor",
        "figures": [
            figure(
                f"faust agent ({case.replace('-', ', ')}) records/s",
                median(runs[case], "per_s"),
                "records/s",
                baseline=bare,
                target="reported (the floor under the 0.5 x bare pipeline target)",
                met=None,
            )
            for case in CASES
        ]
        + [
            # The bare loop's CPU time per record over the case's: the throughput
            # ratio's counterpart that a busy machine moves much less.
            figure(
                f"faust agent ({case.replace('-', ', ')}) CPU per record",
                median(runs[case], "cpu_us"),
                "µs",
                baseline=median(runs["bare"], "cpu_us"),
                target="reported",
                met=None,
            )
            for case in CASES
        ],
        "details": details | {"records": N},
    }
    path = write_result("faust_floor", result | {"quick": QUICK, "machine": machine()})
    print(f"written: {path}")
    for item in result["figures"]:
        value, ratio, baseline = item["value"], item["ratio"], item["baseline"]
        print(f"  {item['name']}: {value:,.0f} ({ratio} x bare {baseline:,.0f})")
    return result


def _app(broker: str, topic: str, app_kind: str) -> faust.App:
    """The Faust app of one round: as shipped, or as the imptrack worker builds it."""
    if app_kind == "imptrack":
        from app.settings import Settings
        from app.streams.faust_app import Role, build_faust_app

        settings = Settings.from_env()
        data_dir = Path(os.environ["FLOOR_DATADIR"])
        role = Role(
            f"floor-{topic}", data_dir, settings.worker_web_port, settings.processing_guarantee
        )
        return build_faust_app(settings, role)
    return faust.App(
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


def _worker(broker: str, topic: str, app_kind: str, mode: str) -> None:
    """The Faust worker of one round (its own process and app id)."""
    import orjson

    from app.compat.table_writes import write_in_event_partition

    app = _app(broker, topic, app_kind)
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
        _worker(*sys.argv[2:6])
    else:
        os.environ.setdefault("PYTHONUNBUFFERED", "1")
        with bench_stack() as stack:
            run(stack)
