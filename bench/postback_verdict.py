"""Benchmark: the postback's verdict latency. ``GET /postback`` is answered with the
worker's verdict (edge -> broker -> worker matches it to the impression -> Redis
reply -> edge), so its latency is the whole round trip.

Impressions are sent through the edge first; each postback then names one of them
(``aimp_id``, view-through) with an ``action_id`` of its own, so each is a new
conversion. Open loop from a separate process: p50/p99 at 1,000 postbacks/s for
10 s (200/s for 2 s in QUICK), then rising rates, 3 s each, up to the first that
keeps p99 above 50 ms or gets an error or a "pending" (202) answer: the highest
rate before it is the maximum sustained rate. The bare pixel handler's p99 at the
same rate is the baseline (bench.bare_pixel). Target: p99 <= 50 ms at 1,000/s.

    python -m bench.postback_verdict          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import asyncio
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp

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
DURATION = 1.5 if QUICK else 10.0
STEPS = (100, 300) if QUICK else (500, 1000, 1500, 2000, 3000)
STEP_SECONDS = 1.0 if QUICK else 3.0
TARGET_P99_MS = 50.0
OFFER_ID = 101
IMPRESSIONS = 200
CATALOG = f"""
advertisers: [{{id: 101, name: Bench advertiser}}]
affiliates: [{{id: 101, name: Bench affiliate}}]
offers:
  - id: {OFFER_ID}
    title: Bench postback offer
    advertiser_id: 101
    allow_impressions: true
    payments: [{{type: CPA, revenue: "10.00", payout: "7.00"}}]
"""


async def _impressions(edge: str) -> list[str]:
    async with aiohttp.ClientSession() as session:
        ids = []
        for n in range(IMPRESSIONS):
            url = f"{edge}/imp?offer_id={OFFER_ID}&pid=101&imp_id=pb{n}"
            async with session.get(url) as response:
                ids.append(response.headers["X-Aimp-Id"])
        return ids


def _urls(folder: Path, edge: str, aimp_ids: list[str], name: str, count: int) -> Path:
    path = folder / f"postbacks-{name}.txt"
    lines = []
    for n in range(count):
        query = urllib.parse.urlencode(
            {"aimp_id": aimp_ids[n % len(aimp_ids)], "action_id": f"{name}-{n}", "status": 1}
        )
        lines.append(f"{edge}/postback?{query}")
    path.write_text("\n".join(lines))
    return path


def _clean(result: dict[str, Any]) -> bool:
    statuses = result.get("statuses", {})
    return bool(result["errors"] == 0 and statuses.get("202", 0) == 0 and result["ok"] > 0)


def run(stack: Stack) -> dict[str, Any]:
    apply_catalog(stack, CATALOG)
    edge = stack.settings.edge_url
    folder = stack.settings.home
    aimp_ids = asyncio.run(_impressions(edge))
    (bare_port,) = probes.free_ports(1)
    bare = serve(
        [sys.executable, "-m", "bench.bare_pixel", str(bare_port)],
        f"http://127.0.0.1:{bare_port}/",
    )
    try:
        warm = load("-", 100, 1.0, urls=_urls(folder, edge, aimp_ids, "warm", 100))
        fixed = load(
            "-", RATE, DURATION, urls=_urls(folder, edge, aimp_ids, "fixed", int(RATE * DURATION))
        )
        baseline = load(f"http://127.0.0.1:{bare_port}/imp?n={{n}}", RATE, DURATION)
        steps = []
        for rate in STEPS:
            count = int(rate * STEP_SECONDS)
            urls = _urls(folder, edge, aimp_ids, f"step{rate}", count)
            steps.append(load("-", rate, STEP_SECONDS, urls=urls))
            if not (_clean(steps[-1]) and steps[-1]["p99_ms"] <= TARGET_P99_MS):
                break
    finally:
        bare.terminate()
        bare.wait(10)
    sustained = max(
        (s["rate"] for s in steps if _clean(s) and s["p99_ms"] <= TARGET_P99_MS), default=0
    )
    accepted = fixed.get("statuses", {}).get("200", 0)
    return {
        "benchmark": "postback_verdict",
        "figures": [
            figure(
                f"postback p50 ms @{RATE}/s",
                fixed["p50_ms"],
                "ms",
                baseline=baseline["p50_ms"],
                target="reported",
                met=None,
            ),
            figure(
                f"postback p99 ms @{RATE}/s",
                fixed["p99_ms"],
                "ms",
                baseline=baseline["p99_ms"],
                target=f"p99 <= {TARGET_P99_MS:g} ms",
                met=None if QUICK else _clean(fixed) and fixed["p99_ms"] <= TARGET_P99_MS,
            ),
            figure(
                "postback max sustained rate (p99 <= 50 ms, no errors)",
                sustained,
                "postbacks/s",
                target=f"reported (steps {', '.join(map(str, STEPS))}/s)",
                met=None,
            ),
        ],
        "details": {
            "warm_up": warm,
            "fixed": fixed,
            "bare_pixel_same_rate": baseline,
            "steps": steps,
            "accepted_at_fixed_rate": accepted,
            "ok": _clean(fixed) and accepted == fixed["ok"],
        },
    }


def main() -> int:
    with bench_stack() as stack:
        result = run(stack)
    path = write_result("postback_verdict", result | {"quick": QUICK, "machine": machine()})
    for f in result["figures"]:
        print(f"{f['name']:55} {f['value']:>8} {f['unit']}  bare {f['baseline']}")
    print(f"written: {path}")
    return 0 if result["details"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
