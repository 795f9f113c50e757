"""Benchmark: the edge pixel (``GET /imp``, answered once the broker acknowledged the
impression) against a bare aiohttp handler answering the same GIF.

Both are loaded from a separate process, alternately, on the same machine in the same
run: closed loop (64 connections, each sending as soon as it is answered) for the
requests/s either can serve, and open loop at a fixed rate for p50/p99 latency.
Target: the edge serves at least 0.8 x the bare handler's requests/s.

    python -m bench.edge_pixel          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

from app import probes
from app.stack import Stack
from bench.common import (
    QUICK,
    apply_catalog,
    bench_stack,
    figure,
    load,
    machine,
    serve,
    write_result,
)

RATE = 200 if QUICK else 1000
DURATION = 1.5 if QUICK else 8.0
ROUNDS = 1 if QUICK else 3
TARGET_RATIO = 0.8
OFFER_ID = 100
CATALOG = f"""
advertisers: [{{id: 100, name: Bench advertiser}}]
affiliates: [{{id: 100, name: Bench affiliate}}]
offers:
  - {{id: {OFFER_ID}, title: Bench pixel offer, advertiser_id: 100, allow_impressions: true}}
"""
QUERY = f"offer_id={OFFER_ID}&pid=100&imp_id=i{{n}}&sub1=placement-{{n}}&sub2=creative"


def _median(runs: list[dict[str, Any]], key: str) -> float:
    return round(float(statistics.median(r[key] for r in runs)), 2)


def _exported(stack: Stack) -> int:
    status = probes.http_json(f"{stack.settings.exporter_url}/healthz")
    assert status is not None, "the exporter is not answering"
    return int(status["exported"]["impressions"])


def _settled(stack: Stack, expected: int, timeout: float = 120.0) -> int:
    deadline = time.monotonic() + timeout
    seen = _exported(stack)
    while seen < expected and time.monotonic() < deadline:
        time.sleep(0.5)
        seen = _exported(stack)
    time.sleep(1.0)  # anything exported twice would show now
    return _exported(stack)


def run(stack: Stack) -> dict[str, Any]:
    apply_catalog(stack, CATALOG)
    (bare_port,) = probes.free_ports(1)
    bare = serve(
        [sys.executable, "-m", "bench.bare_pixel", str(bare_port)],
        f"http://127.0.0.1:{bare_port}/",
    )
    before = _exported(stack)
    targets = {
        "edge": f"{stack.settings.edge_url}/imp?{QUERY}",
        "bare": f"http://127.0.0.1:{bare_port}/imp?{QUERY}",
    }
    saturated: dict[str, list[dict[str, Any]]] = {"edge": [], "bare": []}
    fixed: dict[str, list[dict[str, Any]]] = {"edge": [], "bare": []}
    warm_up: dict[str, Any] = {"ok": 0}
    try:
        warm_up = load(targets["edge"], RATE, 1.0)  # connections, the producer
        for _ in range(ROUNDS):
            for name, url in targets.items():
                saturated[name].append(load(url, 0, DURATION))
                fixed[name].append(load(url, RATE, DURATION))
    finally:
        bare.terminate()
        bare.wait(10)
    answered = warm_up["ok"] + sum(r["ok"] for r in saturated["edge"] + fixed["edge"])
    exported = _settled(stack, before + answered) - before
    edge_rps, bare_rps = _median(saturated["edge"], "rps"), _median(saturated["bare"], "rps")
    errors = sum(r["errors"] for runs in (saturated, fixed) for r in runs["edge"] + runs["bare"])
    judged = None if QUICK else edge_rps >= TARGET_RATIO * bare_rps
    return {
        "benchmark": "edge_pixel",
        "figures": [
            figure(
                "edge pixel requests/s (closed loop, 64 connections)",
                edge_rps,
                "req/s",
                baseline=bare_rps,
                target=f">= {TARGET_RATIO} x bare",
                met=judged,
            ),
            figure(
                f"edge pixel p50 ms @{RATE}/s",
                _median(fixed["edge"], "p50_ms"),
                "ms",
                baseline=_median(fixed["bare"], "p50_ms"),
                target="reported",
                met=None,
            ),
            figure(
                f"edge pixel p99 ms @{RATE}/s",
                _median(fixed["edge"], "p99_ms"),
                "ms",
                baseline=_median(fixed["bare"], "p99_ms"),
                target="reported",
                met=None,
            ),
        ],
        "details": {
            "rate": RATE,
            "duration_s": DURATION,
            "rounds": ROUNDS,
            "saturated": saturated,
            "fixed": fixed,
            "answered_by_edge": answered,
            "exported": exported,
            "errors": errors,
            # Every GIF the edge answered is one exported impression, none twice.
            "ok": errors == 0 and exported == answered,
        },
    }


def main() -> int:
    with bench_stack() as stack:
        result = run(stack)
    path = write_result("edge_pixel", result | {"quick": QUICK, "machine": machine()})
    for f in result["figures"]:
        print(f"{f['name']:55} {f['value']:>10} {f['unit']:6} bare {f['baseline']:>10}")
    d = result["details"]
    print(f"answered {d['answered_by_edge']}, exported {d['exported']}, errors {d['errors']}")
    print(f"written: {path}")
    return 0 if d["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
