"""Benchmark: the edge pixel (``GET /imp``, answered once the broker acknowledged the
impression) against a bare aiohttp handler answering the same GIF (bench.bare_pixel).

Both are loaded from a separate process, alternately, on the same machine in the same
run: open loop at a fixed rate both can sustain for p50/p99 latency, then closed loop
(64 connections, each sending as soon as it is answered) for the requests/s either
can serve. Each run starts once the worker and the exporter have caught up with the
impressions before it, so no run pays for the previous one's backlog. Target: the
edge serves at least 0.8 x the bare handler's requests/s.

Sanity: every answer, edge and bare, is a 200 with the 43-byte GIF; the edge's carry
an ``X-Aimp-Id`` and no rejection; the exporter's count of exported impressions grows
by exactly the number of GIFs the edge answered.

    python -m bench.edge_pixel          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import sys
import time
import urllib.error
import urllib.request
from typing import Any

from app.edge.api_keys import HEADER
from app.edge.pixel import TRANSPARENT_GIF
from app.ids import is_valid_id
from app.installation_secrets import load_api_key
from app.ops import probes
from app.ops.stack import Stack
from bench.common import (
    QUICK,
    apply_catalog,
    bench_stack,
    caught_up,
    figure,
    load,
    machine,
    median,
    quiet,
    serve,
    write_result,
)
from bench.loadgen import digest

RATE = 200 if QUICK else 1000
FIXED_SECONDS = 1.0 if QUICK else 6.0
SATURATED_SECONDS = 0.5 if QUICK else 4.0
WARM_UP_SECONDS = 0.5 if QUICK else 1.0
ROUNDS = 1 if QUICK else 3
CONNECTIONS = 64
TARGET_RATIO = 0.8
PREFLIGHT_TRIES = 50
OFFER_ID = 100
CATALOG = f"""
advertisers: [{{id: 100, name: Bench pixel advertiser}}]
affiliates: [{{id: 1, name: Bench affiliate}}]
offers:
  - {{id: {OFFER_ID}, title: Bench pixel offer, advertiser_id: 100, allow_impressions: true}}
"""
# No impressions_url: nothing is forwarded, so the forwarder stays idle.
QUERY = f"offer_id={OFFER_ID}&pid=1&imp_id=i{{n}}&sub1=placement-{{n}}&sub2=creative"
SAME_HEADERS = ("Content-Type", "Content-Length", "Cache-Control", "Pragma")
GIF = digest(TRANSPARENT_GIF)


def _one_pixel(url: str, sent: dict[str, str] | None = None) -> dict[str, Any]:
    """One pixel's status, headers and whether its body is the GIF."""
    request = urllib.request.Request(url.replace("{n}", "preflight"), headers=sent or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as exc:
        status, headers, body = exc.code, exc.headers, exc.read()
    return {"status": status, "gif": body == TRANSPARENT_GIF, "headers": dict(headers.items())}


def _all_gifs(run: dict[str, Any]) -> bool:
    """Every request of the run answered 200 with the GIF."""
    sent = run["sent"]
    return bool(
        sent > 0
        and run["errors"] == 0
        and run["statuses"] == {"200": sent}
        and run["bodies"] == {GIF: sent}
    )


def run(stack: Stack) -> dict[str, Any]:
    apply_catalog(stack, CATALOG)
    (bare_port,) = probes.free_ports(1)
    bare = serve(
        [sys.executable, "-m", "bench.bare_pixel", str(bare_port)],
        f"http://127.0.0.1:{bare_port}/",
    )
    targets = {
        "bare": f"http://127.0.0.1:{bare_port}/imp?{QUERY}",
        "edge": f"{stack.settings.edge_url}/imp?{QUERY}",
    }
    fixed: dict[str, list[dict[str, Any]]] = {"bare": [], "edge": []}
    saturated: dict[str, list[dict[str, Any]]] = {"bare": [], "edge": []}
    waits: list[float] = []
    before = quiet(stack, "impressions")
    answered = 0  # GIFs the edge answered: each must become one exported impression

    def measure(name: str, rate: float, seconds: float) -> dict[str, Any]:
        nonlocal answered
        waits.append(caught_up(stack, "impressions", before + answered))
        result = load(targets[name], rate, seconds, CONNECTIONS)
        if name == "edge":
            answered += int(result["statuses"].get("200", 0))
        return result

    try:
        preflight = {"bare": _one_pixel(targets["bare"])}
        # Until the edge's catalog has the offer (it follows the broker): each of these
        # GIFs is still an impression, judged by the worker against the new catalog.
        for _ in range(PREFLIGHT_TRIES):
            # With the API key: the edge then shows the aimp_id and any rejection.
            preflight["edge"] = _one_pixel(targets["edge"], {HEADER: load_api_key(stack.settings)})
            answered += preflight["edge"]["status"] == 200
            if "X-Imptrack-Rejected" not in preflight["edge"]["headers"]:
                break
            time.sleep(0.1)
        warm_up = measure("edge", RATE, WARM_UP_SECONDS)  # connections, the producer
        # Alternating, and which goes first alternates by round too.
        orders = [("bare", "edge"), ("edge", "bare")]
        for n in range(ROUNDS):
            for name in orders[n % 2]:
                fixed[name].append(measure(name, RATE, FIXED_SECONDS))
        for n in range(ROUNDS):
            for name in orders[n % 2]:
                saturated[name].append(measure(name, 0, SATURATED_SECONDS))
    finally:
        bare.terminate()
        bare.wait(10)
    settle = caught_up(stack, "impressions", before + answered)
    exported_by_edge = quiet(stack, "impressions") - before  # one exported twice shows now

    edge_headers, bare_headers = preflight["edge"]["headers"], preflight["bare"]["headers"]
    every_run = [r for runs in (fixed, saturated) for name in runs for r in runs[name]]
    checks = {
        "preflight_gifs": all(p["status"] == 200 and p["gif"] for p in preflight.values()),
        "same_headers": all(edge_headers.get(h) == bare_headers.get(h) for h in SAME_HEADERS),
        "edge_aimp_id": is_valid_id(edge_headers.get("X-Aimp-Id", "")),
        "edge_not_rejected": "X-Imptrack-Rejected" not in edge_headers,
        "every_answer_a_gif": all(_all_gifs(r) for r in [warm_up, *every_run]),
        "exported_once_each": exported_by_edge == answered,
    }
    edge_rps, bare_rps = median(saturated["edge"], "rps"), median(saturated["bare"], "rps")
    return {
        "benchmark": "edge_pixel",
        "figures": [
            figure(
                "edge pixel requests/s",
                edge_rps,
                "req/s",
                baseline=bare_rps,
                target=f">= {TARGET_RATIO} x bare",
                met=None if QUICK else edge_rps >= TARGET_RATIO * bare_rps,
            ),
            figure(
                f"edge pixel p50 ms @{RATE}/s",
                median(fixed["edge"], "p50_ms"),
                "ms",
                baseline=median(fixed["bare"], "p50_ms"),
                target="reported",
                met=None,
            ),
            figure(
                f"edge pixel p99 ms @{RATE}/s",
                median(fixed["edge"], "p99_ms"),
                "ms",
                baseline=median(fixed["bare"], "p99_ms"),
                target="reported",
                met=None,
            ),
        ],
        "details": {
            "rate": RATE,
            "fixed_seconds": FIXED_SECONDS,
            "saturated_seconds": SATURATED_SECONDS,
            "connections": CONNECTIONS,
            "rounds": ROUNDS,
            "preflight": preflight,
            "warm_up": warm_up,
            "fixed": fixed,
            "saturated": saturated,
            "catch_up_waits_s": waits,
            "settle_s": settle,
            "answered_by_edge": answered,
            "exported": exported_by_edge,
            "checks": checks,
            "ok": all(checks.values()),
        },
    }


def main() -> int:
    with bench_stack() as stack:
        result = run(stack)
    path = write_result("edge_pixel", result | {"quick": QUICK, "machine": machine()})
    print(f"{'figure':32} {'edge':>10} {'bare':>10} {'ratio':>7}  target")
    for f in result["figures"]:
        ratio = "" if f["ratio"] is None else f["ratio"]
        print(f"{f['name']:32} {f['value']:>10} {f['baseline']:>10} {ratio:>7}  {f['target']}")
    d = result["details"]
    print(f"answered by the edge {d['answered_by_edge']}, exported {d['exported']}")
    print(f"checks: {d['checks']}")
    print(f"written: {path}")
    return 0 if d["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
