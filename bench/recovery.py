"""Benchmark: the worker's restart to ready with KEYS aimp_ids in its impressions
table (1,000,000; QUICK 2,000; the environment variable RECOVERY_KEYS overrides).

The table is filled the honest way: impressions go through the worker (as in
bench.pipeline) until it holds KEYS of them, counting what earlier benchmarks left.
Then the worker is killed with SIGKILL and started again, and later stopped cleanly
and started again. Each restart is timed from the start of the process until its
/healthz says ready (catalog loaded, table recovered, no rebalance) and until an
impression sent after it has been processed. A postback naming an impression of
the first batch then shows the table still knows it. Target: ready <= 15 s.

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

from app import probes
from app.stack import Stack
from bench.common import QUICK, apply_catalog, bench_stack, figure, machine, serve, write_result
from bench.pipeline import OFFER_ID, catalog, impressions, system_round

KEYS = int(os.environ.get("RECOVERY_KEYS", 2_000 if QUICK else 1_000_000))
FILL_BATCH = 50_000
TARGET_S = 15.0


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
    stack.start("worker")  # returns once /healthz answers at all
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
    (sink_port,) = probes.free_ports(1)
    sink = serve(
        [sys.executable, "-m", "bench.sink", str(sink_port)],
        f"http://127.0.0.1:{sink_port}/count",
    )
    try:
        apply_catalog(stack, catalog(sink_port))
        fill_began = time.monotonic()
        filled = 0
        first_id = ""
        while filled < KEYS:
            batch = impressions(min(FILL_BATCH, KEYS - filled))
            first_id = first_id or batch[0][0]
            filled += asyncio.run(system_round(stack.settings.broker, batch))["recorded"]
        fill_s = time.monotonic() - fill_began
        # QUICK keeps to the clean stop: after a kill the group waits out the dead
        # member's session (about 10 s), which a smoke run need not.
        restarts = [restart(stack, how) for how in (("stop",) if QUICK else ("kill", "stop"))]
        verdict = _postback_verdict(stack, first_id)
    finally:
        sink.terminate()
        sink.wait(10)
    known = "unknown aimp_id" not in json.dumps(verdict)
    figures = [
        figure(
            f"worker restart to ready s ({KEYS:,} keys, after {r['how']})",
            r["ready_s"],
            "s",
            target=f"<= {TARGET_S:g} s at 1,000,000 keys",
            met=None if QUICK or KEYS < 1_000_000 else r["ready_s"] <= TARGET_S,
        )
        for r in restarts
    ]
    return {
        "benchmark": "recovery",
        "figures": figures,
        "details": {
            "offer_id": OFFER_ID,
            "keys_added": filled,
            "fill_s": round(fill_s, 1),
            "restarts": restarts,
            "old_impression_verdict": verdict,
            "ok": known and all(r["probe_recorded"] == 1 for r in restarts),
        },
    }


def main() -> int:
    with bench_stack() as stack:
        result = run(stack)
    path = write_result("recovery", result | {"quick": QUICK, "machine": machine()})
    d = result["details"]
    print(f"filled {d['keys_added']:,} keys in {d['fill_s']} s")
    for r in d["restarts"]:
        print(f"after {r['how']}: ready in {r['ready_s']} s, processing in {r['processing_s']} s")
    print(f"old impression's postback: {d['old_impression_verdict']}")
    print(f"written: {path}")
    return 0 if d["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
