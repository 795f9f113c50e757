"""Benchmark: the forwarder's deliveries to an advertiser endpoint (``bench.sink``, a
local aiohttp server) against a bare aiohttp client sending the same requests.

The system: N forward tasks, in envelopes of 200 as the impressions agent emits
them, go to the ``forward-tasks`` topic; the forwarder process schedules each
envelope's tasks in Redis, claims them, delivers each and logs the attempt.
Measured at the sink, from its first request to the N-th distinct impression. The
bare client: a separate process sending N GETs of the same shape to the same sink
with the forwarder's per-host connection limit (FORWARD_HOST_CONCURRENCY).
Alternating, 3 rounds (1 in QUICK), medians. Target: >= 0.5 x bare.

    python -m bench.forwarder          # QUICK=1 for a smoke run
    PROFILE=/tmp/fwd python -m bench.forwarder   # and py-spy the forwarder in round 1

Each round also reports the CPU the forwarder process and Redis spent per delivery.
With PROFILE set, py-spy samples the forwarder process through the first round:
``$PROFILE.folded`` gets its stacks, ``$PROFILE.txt`` the functions that took most
of its samples.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.events import kinds
from app.events.provenance import source_headers
from app.events.records import ForwardTask
from app.ids import IdGenerator, IdSeal
from app.ops import probes
from app.ops.stack import Stack
from bench.common import (
    QUICK,
    apply_catalog,
    bench_stack,
    figure,
    machine,
    serve,
    write_result,
)

N = 1_000 if QUICK else 20_000
ROUNDS = 1 if QUICK else 3
TARGET_RATIO = 0.5
OFFER_ID = 200
ENVELOPE_TASKS = 200
"""Forward tasks an envelope: the edge's envelopes hold up to 200 impressions
(EDGE_ENVELOPE_EVENTS), and each recorded one of an offer that forwards is a task."""
PROFILE = os.environ.get("PROFILE", "")
PROFILE_RATE = 250
PROFILE_TOP = 30
CATALOG = """
advertisers: [{id: 200, name: Bench advertiser}]
affiliates: [{id: 200, name: Bench affiliate}]
offers:
  - id: 200
    title: Bench forwarding offer
    advertiser_id: 200
    allow_impressions: true
"""


def _sink(url: str, path: str, method: str = "GET") -> dict[str, Any]:
    request = urllib.request.Request(f"{url}{path}", method=method)
    with urllib.request.urlopen(request, timeout=5) as response:
        answer: dict[str, Any] = json.loads(response.read())
        return answer


def _wait_for(sink: str, count: int, timeout: float = 300.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    seen = _sink(sink, "/count")
    while seen["distinct"] < count and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = _sink(sink, "/count")
    time.sleep(1.0)  # a delivery made twice would show now
    return _sink(sink, "/count")


async def _produce_tasks(broker: str, sink: str, count: int, partitions: int) -> None:
    """``count`` forward tasks to the sink in envelopes of :data:`ENVELOPE_TASKS`, as
    the impressions agent writes them: keyed by their envelope's key, on its
    partition, the partitions in turn, each naming the record it was made from (a
    source topic of this call's own, so every round's tasks are new to the
    forwarder's dedup, which keeps a mark per source partition, not a key per task)."""
    ids = IdGenerator(IdSeal(os.urandom(32)))  # IDs nobody checks here
    source_topic = f"bench-impressions-{uuid.uuid4().hex[:8]}"
    offsets = [0] * partitions
    destination = f"{sink}/imp?a={{aimp_id}}"
    fmt = kinds.FORWARD_TASKS.enveloped.current
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5)
    await producer.start()
    try:
        acks = []
        for first in range(0, count, ENVELOPE_TASKS):
            envelope = ids.open_envelope((first // ENVELOPE_TASKS) % partitions)
            tasks = []
            for slot in range(min(ENVELOPE_TASKS, count - first)):
                aimp_id = envelope.id(slot)
                task = ForwardTask(
                    aimp_id=aimp_id,
                    offer_id=OFFER_ID,
                    pid=200,
                    advertiser_id=200,
                    destination=destination,
                    url=destination.replace("{aimp_id}", aimp_id),
                )
                tasks.append(task.asdict())
            offset = offsets[envelope.partition]
            offsets[envelope.partition] += 1
            acks.append(
                await producer.send(
                    kinds.FORWARD_TASKS.topic,
                    value=fmt.encode_rows(tasks),
                    key=envelope.key.encode(),
                    partition=envelope.partition,
                    headers=source_headers(source_topic, envelope.partition, offset),
                )
            )
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def _process_cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _redis_cpu_seconds(stack: Stack) -> float:
    client = redis.Redis.from_url(stack.settings.redis)
    try:
        info: dict[str, Any] = client.info("cpu")
    finally:
        client.close()
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _start_profile(pid: int, path: Path) -> subprocess.Popen[bytes]:
    py_spy = Path(sys.executable).with_name("py-spy")
    argv = [str(py_spy), "record", "--pid", str(pid), "--format", "raw", "--output", str(path)]
    argv += ["--rate", str(PROFILE_RATE), "--nonblocking"]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _stop_profile(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(signal.SIGINT)
    profiler.wait(30)


def profile_summary(folded: Path, seconds: float) -> str:
    """The functions in most of py-spy's samples (folded stacks): the share of samples
    each was on the stack (inclusive) and on top (self), and how busy the process was."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in folded.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [frame.rsplit(":", 1)[0] for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    busy = total / (PROFILE_RATE * seconds)
    lines = [f"{total} samples over {seconds:.1f} s: the process busy {busy:.0%} of the time", ""]
    # The event loop, the CLI and the threads' entry points are on most stacks.
    lines.append("inclusive  self  function (those on over 60 % of the stacks left out)")
    shown = [(f, n) for f, n in inclusive.most_common() if n <= 0.6 * total][:PROFILE_TOP]
    for frame, n in shown:
        lines.append(f"{n / total:8.1%} {own[frame] / total:6.1%}  {frame}")
    lines += ["", "self  function"]
    for frame, n in own.most_common(PROFILE_TOP):
        lines.append(f"{n / total:6.1%}  {frame}")
    return "\n".join(lines) + "\n"


async def _requests_in_flight(broker: str, since_ms: int) -> dict[str, float]:
    """From the delivery log (``deliveries``): how many requests were in flight on
    average over the attempts made since ``since_ms``, and their median latency. The
    host's 32 slots each carry a request and then its recording and next claim: the
    bare client keeps all 32 connections busy."""
    consumer = AIOKafkaConsumer(
        kinds.DELIVERIES.topic,
        bootstrap_servers=broker,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    spans = []
    try:
        while batch := await consumer.getmany(timeout_ms=1000, max_records=10_000):
            for messages in batch.values():
                for message in messages:
                    attempt = orjson.loads(message.value)
                    if attempt["at_ms"] >= since_ms:
                        spans.append((attempt["at_ms"], float(attempt["latency_ms"])))
    finally:
        await consumer.stop()
    if not spans:
        return {}
    busy = sum(latency for _, latency in spans)
    first = min(at for at, _ in spans)
    last = max(at + latency for at, latency in spans)
    return {
        "requests_in_flight": round(busy / max(1.0, last - first), 1),
        "request_ms_median": round(statistics.median(latency for _, latency in spans), 2),
    }


def system_round(stack: Stack, sink: str, profile: Path | None = None) -> dict[str, Any]:
    _sink(sink, "/reset", "POST")
    forwarder = stack.pid("forwarder")
    if forwarder is None:
        raise RuntimeError("the forwarder is not running")
    profiler = None if profile is None else _start_profile(forwarder, profile)
    cpu_before, redis_before = _process_cpu_seconds(forwarder), _redis_cpu_seconds(stack)
    started, started_ms = time.monotonic(), time.time_ns() // 1_000_000
    asyncio.run(_produce_tasks(stack.settings.broker, sink, N, stack.settings.topic_partitions))
    seen = _wait_for(sink, N)
    cpu = _process_cpu_seconds(forwarder) - cpu_before
    redis_cpu = _redis_cpu_seconds(stack) - redis_before
    if profiler is not None and profile is not None:
        _stop_profile(profiler)
        summary = profile_summary(profile, time.monotonic() - started)
        profile.with_suffix(".txt").write_text(summary)
    seconds = max(0.001, seen["last"] - seen["first"])
    in_flight = asyncio.run(_requests_in_flight(stack.settings.broker, started_ms))
    return (
        seen
        | in_flight
        | {
            "seconds": round(seconds, 3),
            "per_s": round(seen["distinct"] / seconds),
            # The round's whole time, its wait for a repeat included.
            "forwarder_cpu_us_per_delivery": round(cpu / N * 1e6, 1),
            "redis_cpu_us_per_delivery": round(redis_cpu / N * 1e6, 1),
        }
    )


def bare_round(sink: str, connections: int) -> dict[str, Any]:
    _sink(sink, "/reset", "POST")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bare_client",
            f"{sink}/imp?a=bare{{n}}",
            str(N),
            str(connections),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    client: dict[str, Any] = json.loads(out.stdout)
    seen = _sink(sink, "/count")
    seconds = max(0.001, seen["last"] - seen["first"])
    return (
        seen
        | client
        | {
            "seconds": round(seconds, 3),
            "per_s": round(seen["distinct"] / seconds),
            "cpu_us_per_request": round(client["cpu_seconds"] / N * 1e6, 1),
        }
    )


def run(stack: Stack) -> dict[str, Any]:
    apply_catalog(stack, CATALOG)
    (port,) = probes.free_ports(1)
    sink = f"http://127.0.0.1:{port}"
    server = serve([sys.executable, "-m", "bench.sink", str(port)], f"{sink}/count")
    connections = stack.settings.forwarding.host_concurrency
    runs: dict[str, list[dict[str, Any]]] = {"forwarder": [], "bare": []}
    try:
        for n in range(ROUNDS):
            profile = Path(f"{PROFILE}.folded") if PROFILE and n == 0 else None
            runs["forwarder"].append(system_round(stack, sink, profile))
            runs["bare"].append(bare_round(sink, connections))
    finally:
        server.terminate()
        server.wait(10)
    forwarder = float(statistics.median(r["per_s"] for r in runs["forwarder"]))
    bare = float(statistics.median(r["per_s"] for r in runs["bare"]))
    return {
        "benchmark": "forwarder",
        "figures": [
            figure(
                "forwarder deliveries/s",
                forwarder,
                "deliveries/s",
                baseline=bare,
                target=f">= {TARGET_RATIO} x bare client",
                met=None if QUICK else forwarder >= TARGET_RATIO * bare,
            )
        ],
        "details": {
            "tasks_per_round": N,
            "rounds": ROUNDS,
            "connections": connections,
            "runs": runs,
            # Each impression delivered exactly once; the bare client's all answered.
            "ok": all(r["distinct"] == N and r["repeated"] == 0 for r in runs["forwarder"])
            and all(r["distinct"] == N and r["failed"] == 0 for r in runs["bare"]),
        },
    }


def main() -> int:
    with bench_stack() as stack:
        result = run(stack)
    path = write_result("forwarder", result | {"quick": QUICK, "machine": machine()})
    for name, runs in result["details"]["runs"].items():
        print(name, [r["per_s"] for r in runs])
    (f,) = result["figures"]
    print(f"{f['name']}: {f['value']:,.0f} vs bare {f['baseline']:,.0f} ({f['ratio']} x)")
    print(f"written: {path}")
    return 0 if result["details"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
