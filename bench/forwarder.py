"""Benchmark: the forwarder's deliveries to an advertiser endpoint (``bench.sink``, a
local aiohttp server) against a bare aiohttp client sending the same requests.

The system: N forward tasks, as the impressions agent emits them, go to the
``forward-tasks`` topic; the forwarder process schedules each in Redis, claims it,
delivers it and logs the attempt. Measured at the sink, from its first request to
the N-th distinct impression. The bare client: a separate process sending N GETs
of the same shape to the same sink with the forwarder's per-host connection limit
(FORWARD_HOST_CONCURRENCY). Alternating, 3 rounds (1 in QUICK), medians. Target:
>= 0.5 x bare.

    python -m bench.forwarder          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

from aiokafka import AIOKafkaProducer

from app.events import kinds
from app.events.records import ForwardTask
from app.ids import IdGenerator, IdSeal
from app.ops import probes
from app.ops.stack import Stack
from bench.common import QUICK, apply_catalog, bench_stack, figure, machine, serve, write_result

N = 1_000 if QUICK else 20_000
ROUNDS = 1 if QUICK else 3
TARGET_RATIO = 0.5
OFFER_ID = 200
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


async def _produce_tasks(broker: str, sink: str, count: int) -> None:
    ids = IdGenerator(IdSeal(os.urandom(32)))  # IDs nobody checks here
    destination = f"{sink}/imp?a={{aimp_id}}"
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5)
    await producer.start()
    try:
        acks = []
        for _ in range(count):
            aimp_id = ids.new_id()
            task = ForwardTask(
                aimp_id=aimp_id,
                offer_id=OFFER_ID,
                pid=200,
                advertiser_id=200,
                destination=destination,
                url=destination.replace("{aimp_id}", aimp_id),
            )
            acks.append(
                await producer.send(
                    kinds.FORWARD_TASKS.topic, value=task.dumps(), key=aimp_id.encode()
                )
            )
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


def system_round(stack: Stack, sink: str) -> dict[str, Any]:
    _sink(sink, "/reset", "POST")
    asyncio.run(_produce_tasks(stack.settings.broker, sink, N))
    seen = _wait_for(sink, N)
    seconds = max(0.001, seen["last"] - seen["first"])
    return seen | {"seconds": round(seconds, 3), "per_s": round(seen["distinct"] / seconds)}


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
        seen | client | {"seconds": round(seconds, 3), "per_s": round(seen["distinct"] / seconds)}
    )


def run(stack: Stack) -> dict[str, Any]:
    apply_catalog(stack, CATALOG)
    (port,) = probes.free_ports(1)
    sink = f"http://127.0.0.1:{port}"
    server = serve([sys.executable, "-m", "bench.sink", str(port)], f"{sink}/count")
    connections = stack.settings.forwarding.host_concurrency
    runs: dict[str, list[dict[str, Any]]] = {"forwarder": [], "bare": []}
    try:
        for _ in range(ROUNDS):
            runs["forwarder"].append(system_round(stack, sink))
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
