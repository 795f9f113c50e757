"""Benchmark: the click redirect (``GET /click``) against a bare aiohttp redirect.

Both are loaded from a separate process at the same fixed rate, alternately, on
the same machine in the same run: the edge answers only after the broker has the
click and the worker holding the partition of its ``imp_id`` has been asked for the
impression it follows (app/edge/links.py); the bare handler just builds a
Location. Reported: achieved requests/s and p50/p99 latency of each, and the edge's
figures as a ratio of the baseline's.

    python -m bench.click_redirect          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import sys
from typing import Any

from app.ops import probes
from app.ops.stack import Stack
from bench.common import (
    QUICK,
    apply_catalog,
    bench_stack,
    figure,
    load,
    machine,
    median,
    serve,
    write_result,
)

RATE = 200 if QUICK else 1000
DURATION = 1.0 if QUICK else 6.0
ROUNDS = 1 if QUICK else 3
TARGET_RATIO = 0.7  # issue 23: requests/s against the bare redirect handler
CATALOG = """
advertisers: [{id: 1, name: Bench advertiser}]
affiliates: [{id: 1, name: Bench affiliate}]
offers:
  - id: 1
    title: Bench offer
    advertiser_id: 1
    allow_impressions: true
    tracking_url: "https://adv.example/c?clickid={clickid}&aimp_id={aimp_id}&sub1={sub1}"
"""
QUERY = "offer_id=1&pid=1&imp_id=i{n}&sub1=s%26{n}"


def run(stack: Stack) -> dict[str, Any]:
    apply_catalog(stack, CATALOG)
    (bare_port,) = probes.free_ports(1)
    bare = serve(
        [sys.executable, "-m", "bench.bare_redirect", str(bare_port)],
        f"http://127.0.0.1:{bare_port}/",
    )
    try:
        targets = {
            "bare": f"http://127.0.0.1:{bare_port}/click?{QUERY}",
            "edge": f"{stack.settings.edge_url}/click?{QUERY}",
        }
        runs: dict[str, list[dict[str, Any]]] = {"bare": [], "edge": []}
        load(targets["edge"], RATE, 1.0)  # warm-up: connections, caches
        for _ in range(ROUNDS):
            for name, url in targets.items():
                runs[name].append(load(url, RATE, DURATION))
    finally:
        bare.terminate()
        bare.wait(10)
    figures = {
        name: {
            "rps": median(r, "rps"),
            "p50_ms": median(r, "p50_ms"),
            "p99_ms": median(r, "p99_ms"),
            "errors": sum(x["errors"] for x in r),
            "runs": r,
        }
        for name, r in runs.items()
    }
    edge, bare_figures = figures["edge"], figures["bare"]
    return {
        "benchmark": "click_redirect",
        "figures": [
            figure(
                f"click redirect requests/s @{RATE:g}/s",
                edge["rps"],
                "req/s",
                baseline=bare_figures["rps"],
                target=f">= {TARGET_RATIO} x bare",
                met=None if QUICK else edge["rps"] >= TARGET_RATIO * bare_figures["rps"],
            ),
            figure(
                f"click redirect p99 ms @{RATE:g}/s",
                edge["p99_ms"],
                "ms",
                baseline=bare_figures["p99_ms"],
                target="reported",
                met=None,
            ),
        ],
        "details": {
            "rate": RATE,
            "duration_s": DURATION,
            "rounds": ROUNDS,
            "edge": edge,
            "bare": bare_figures,
            "ok": edge["errors"] == 0 and bare_figures["errors"] == 0,
        },
    }


def main() -> int:
    with bench_stack() as stack:
        result = run(stack)
    path = write_result("click_redirect", result | {"quick": QUICK, "machine": machine()})
    details = result["details"]
    print(f"click redirect at {RATE:g}/s for {DURATION:g} s, {ROUNDS} rounds (median)")
    print(f"{'':6} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    for name in ("edge", "bare"):
        f = details[name]
        print(f"{name:6} {f['rps']:>9} {f['p50_ms']:>8} {f['p99_ms']:>8} {f['errors']:>7}")
    print(f"written: {path}")
    return 0 if details["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
