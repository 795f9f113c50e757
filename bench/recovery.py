"""Benchmark: the worker's restart to ready with KEYS aimp_ids in its impressions
table (1,000,000; QUICK 5,000; the environment variable RECOVERY_KEYS overrides).

The table is filled in two parts. The first WORKER_KEYS impressions go through the
worker (as in bench.pipeline); the rest (the worker takes about 1,000 a second,
too slow for a 10-minute ``make bench``) are written straight to the table's
changelog topic as the worker writes them: key the ``aimp_id`` as JSON, value the
recorded impression as Faust's JSON, on the partition of the ``impressions`` topic
the edge would have sent it to. A running worker does not read its own changelog,
so the first restart recovers those keys from it, the case of a worker whose disk
was lost; later restarts find them in RocksDB.

The worker is stopped and started to rebuild (timed too: the lost-disk case), then
killed with SIGKILL and started again, then stopped cleanly and started again. Each
restart is timed from the start of the process until its /healthz says ready
(catalog loaded, table recovered, no rebalance) and until an impression sent after
it has been processed. Postbacks naming the first impression
through the worker and the last one written to the changelog then show the table
knows both. Target: ready <= 15 s.

    python -m bench.recovery          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import urllib.parse
import urllib.request
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from app.events import kinds
from app.events.records import Impression
from app.ids import IdSeal
from app.installation_secrets import load_id_key
from app.ops import probes
from app.ops.stack import Stack
from bench.common import QUICK, bench_stack, figure, machine, sink_with_catalog, write_result
from bench.pipeline import OFFER_ID, catalog, impressions, system_round

KEYS = int(os.environ.get("RECOVERY_KEYS", 5_000 if QUICK else 1_000_000))
# Some in each part, whatever KEYS is.
WORKER_KEYS = min(KEYS // 2, 1_000 if QUICK else 20_000)
FILL_BATCH = 50_000
CHANGELOG = kinds.changelog("impressions")
TARGET_S = 15.0
WHAT = {
    "rebuild": "rebuilt from the changelog",
    "kill": "after SIGKILL",
    "stop": "after a clean stop",
}


def _ready(stack: Stack) -> bool:
    status = probes.http_json(f"{stack.settings.worker_url}/healthz")
    return status is not None and status.get("status") == "ok"


def restart(stack: Stack, how: str) -> dict[str, Any]:
    """Kill or stop the worker, start it again; seconds to ready and to processing."""
    if how == "kill":
        stack.kill("worker")
    else:
        stack.stop("worker")
    began = time.monotonic()
    stack.start("worker", timeout=600)  # returns once /healthz answers at all
    while not _ready(stack) and time.monotonic() - began < 300:
        time.sleep(0.05)
    ready_s = time.monotonic() - began
    probe = asyncio.run(system_round(stack.settings.broker, impressions(1)))
    return {
        "how": how,
        "ready_s": round(ready_s, 2),
        "processing_s": round(time.monotonic() - began, 2),
        "probe_recorded": probe["recorded"],
    }


async def _write_changelog(broker: str, count: int, seal: IdSeal) -> str:
    """``count`` recorded impressions straight into the table's changelog; the last
    one's ``aimp_id``."""
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=20)
    await producer.start()
    try:
        # The partition of the impressions topic the edge would send a key to (its
        # producer's default partitioner) is the table's partition for that key.
        partitions = sorted(await producer.partitions_for(kinds.IMPRESSIONS.topic))
        partitioner = DefaultPartitioner()
        newest = ""
        for start in range(0, count, FILL_BATCH):
            acks = []
            for aimp_id, payload in impressions(min(FILL_BATCH, count - start), seal):
                # What the impressions agent writes: the impression as the edge sent it.
                value = Impression(**orjson.loads(payload)).dumps(serializer="json")
                partition = partitioner(aimp_id.encode(), partitions, partitions)
                # Faust writes changelog keys as JSON, whatever the table's schema says.
                key = orjson.dumps(aimp_id)
                acks.append(await producer.send(CHANGELOG, value, key=key, partition=partition))
                newest = max(newest, aimp_id)
            await asyncio.gather(*acks)
    finally:
        await producer.stop()
    return newest


def _postback_verdict(stack: Stack, aimp_id: str) -> dict[str, Any]:
    query = urllib.parse.urlencode({"aimp_id": aimp_id, "action_id": f"recovery-{aimp_id}"})
    request = urllib.request.Request(f"{stack.settings.edge_url}/postback?{query}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            answer: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as refused:
        answer = json.loads(refused.read())
    return answer


def run(stack: Stack) -> dict[str, Any]:
    with sink_with_catalog(stack, catalog):
        # The stack's own ID key: the postbacks below name these impressions.
        seal = IdSeal(load_id_key(stack.settings))
        fill_began = time.monotonic()
        through_worker = 0
        first_id = ""
        while through_worker < WORKER_KEYS:
            batch = impressions(min(FILL_BATCH, WORKER_KEYS - through_worker), seal)
            first_id = first_id or batch[0][0]
            through_worker += asyncio.run(system_round(stack.settings.broker, batch))["recorded"]
        worker_fill_s = time.monotonic() - fill_began
        last_id = asyncio.run(_write_changelog(stack.settings.broker, KEYS - through_worker, seal))
        fill_s = time.monotonic() - fill_began
        # The first restart reads the changelog-written keys into RocksDB ("rebuild",
        # a clean stop). QUICK keeps to it: after a kill the group waits out the dead
        # member's session (about 10 s), which a smoke run need not.
        hows = ("rebuild",) if QUICK else ("rebuild", "kill", "stop")
        restarts = [restart(stack, how) for how in hows]
        verdicts = {
            "first_through_worker": _postback_verdict(stack, first_id),
            "last_in_changelog": _postback_verdict(stack, last_id),
        }
    # Status 1: the postback found its impression and made a conversion of it.
    known = all(v.get("status") == 1 for v in verdicts.values())
    judged = not QUICK and KEYS >= 1_000_000
    figures = [
        figure(
            f"worker restart to ready s ({KEYS:,} keys, {WHAT[r['how']]})",
            r["ready_s"],
            "s",
            target="reported (a lost disk)"
            if r["how"] == "rebuild"
            else f"<= {TARGET_S:g} s at 1,000,000 keys",
            met=r["ready_s"] <= TARGET_S if judged and r["how"] != "rebuild" else None,
        )
        for r in restarts
    ]
    return {
        "benchmark": "recovery",
        "figures": figures,
        "details": {
            "offer_id": OFFER_ID,
            "keys_through_worker": through_worker,
            "keys_in_changelog": KEYS - through_worker,
            "worker_fill_s": round(worker_fill_s, 1),
            "fill_s": round(fill_s, 1),
            "restarts": restarts,
            "postback_verdicts": verdicts,
            "ok": known and all(r["probe_recorded"] == 1 for r in restarts),
        },
    }


def main() -> int:
    with bench_stack() as stack:
        result = run(stack)
    path = write_result("recovery", result | {"quick": QUICK, "machine": machine()})
    d = result["details"]
    print(
        f"filled {d['keys_through_worker']:,} keys through the worker in {d['worker_fill_s']} s,"
        f" {d['keys_in_changelog']:,} in the changelog; {d['fill_s']} s in all"
    )
    for r in d["restarts"]:
        print(f"after {r['how']}: ready in {r['ready_s']} s, processing in {r['processing_s']} s")
    print(f"postbacks naming old impressions: {d['postback_verdicts']}")
    print(f"written: {path}")
    return 0 if d["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
