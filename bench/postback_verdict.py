"""Benchmark: the postback's verdict latency. ``GET /postback`` is answered with the
worker's verdict (edge -> broker -> worker matches it to the impression -> broker ->
worker decides the conversion -> broker -> Redis reply -> edge), so its latency is the
whole round trip.

Impressions are sent through the edge first, and the benchmark waits until they are
recorded; each postback then names one of them (``aimp_id``, view-through) with an
``action_id`` of its own, so each is a new conversion. Open loop from a separate
process, over up to 1,024 connections, so a slow verdict does not hold back the
postbacks due after it:

1. p50/p99 at 1,000 postbacks/s for 10 s (200/s for 1 s in QUICK), alternating with
   the bare pixel handler (bench.bare_pixel) at the same rate as the baseline;
   3 rounds, medians (1 in QUICK).
2. Rising rates, 3 s each (1 s in QUICK), until one gets an error or a "pending"
   (202) answer, or has p99 above 1 s. The maximum sustained rate is the highest
   with p99 <= 50 ms and neither. While no rate makes it, the details give the
   capacity instead (``capacity``): the highest rate with every verdict and p99
   <= 1 s, half the edge's verdict wait; past it postbacks queue, in the edge or in
   the load generator, and the latency grows with the step's length.

Each run starts once the exporter has every conversion answered before it, so no run
pays for the previous one's backlog. Target: p99 <= 50 ms at 1,000/s.

Sanity: every postback is accepted (status 1, answered 200 or "pending" 202), and the
exporter's count of exported conversions grows by exactly the number accepted.

    python -m bench.postback_verdict          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import os
import statistics
import sys
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from app.edge.api_keys import HEADER
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

RATE = 200 if QUICK else 1000
DURATION = 1.0 if QUICK else 10.0
BARE_SECONDS = 1.0 if QUICK else 3.0
ROUNDS = 1 if QUICK else 3
WARM_UP_SECONDS = 0.5 if QUICK else 1.0
WARM_UP_RATE = 100
STEPS = (300,) if QUICK else (250, 500, 1000, 1500, 2000, 3000)
STEP_SECONDS = 1.0 if QUICK else 3.0
# Open loop: a postback waits up to POSTBACK_VERDICT_SECONDS (2 s) for its verdict,
# so a slow verdict must not hold back the ones due after it.
CONNECTIONS = 1024
TARGET_P99_MS = 50.0
CAPACITY_P99_MS = 1000.0
IMPRESSIONS = 50 if QUICK else 200
OFFER_ID = 101
CATALOG = f"""
advertisers: [{{id: 101, name: Bench postback advertiser}}]
affiliates: [{{id: 1, name: Bench affiliate}}]
offers:
  - id: {OFFER_ID}
    title: Bench postback offer
    advertiser_id: 101
    allow_impressions: true
    payments: [{{type: CPA, revenue: "10.00", payout: "7.00"}}]
"""
ACCEPTED = ("200:1", "202:1")  # HTTP status : the answer's "status"


def _impressions(stack: Stack) -> list[str]:
    """Impressions through the edge, recorded by the worker: their ``aimp_id``s."""
    before = quiet(stack, "impressions")
    edge = stack.settings.edge_url
    ids = []
    for n in range(IMPRESSIONS):
        url = f"{edge}/imp?offer_id={OFFER_ID}&pid=1&imp_id=pb{n}"
        # With the API key, so that the pixel shows its aimp_id.
        request = urllib.request.Request(url, headers={HEADER: load_api_key(stack.settings)})
        with urllib.request.urlopen(request, timeout=10) as response:
            aimp_id = response.headers.get("X-Aimp-Id", "")
            if response.status != 200 or not is_valid_id(aimp_id):
                raise RuntimeError(f"the pixel answered {response.status}, X-Aimp-Id {aimp_id!r}")
            ids.append(aimp_id)
    caught_up(stack, "impressions", before + IMPRESSIONS)
    if quiet(stack, "impressions") < before + IMPRESSIONS:
        raise RuntimeError(f"the {IMPRESSIONS} impressions were not recorded by the worker")
    return ids


def _urls(folder: Path, edge: str, aimp_ids: list[str], name: str, count: int) -> Path:
    """A file of ``count`` postbacks, each a new action (conversion) on an impression."""
    path = folder / f"postbacks-{name}.txt"
    lines = []
    for n in range(count):
        query = urllib.parse.urlencode(
            {"aimp_id": aimp_ids[n % len(aimp_ids)], "action_id": f"{name}-{n}", "status": 1}
        )
        lines.append(f"{edge}/postback?{query}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _accepted(run: dict[str, Any]) -> int:
    return sum(int(run["json_status"].get(key, 0)) for key in ACCEPTED)


def _all_accepted(run: dict[str, Any]) -> bool:
    return bool(run["sent"] > 0 and run["errors"] == 0 and _accepted(run) == run["sent"])


def _within(run: dict[str, Any], p99_ms: float) -> bool:
    """Every postback accepted with its verdict (no error, no "pending"), p99 within."""
    verdicts = int(run["json_status"].get("200:1", 0))
    return bool(run["sent"] > 0 and verdicts == run["sent"] and run["p99_ms"] <= p99_ms)


def run(stack: Stack) -> dict[str, Any]:
    apply_catalog(stack, CATALOG)
    edge = stack.settings.edge_url
    folder = stack.settings.home
    token = os.urandom(3).hex()  # action_ids new to this stack, however often it runs
    conversions_before = quiet(stack, "conversions")
    aimp_ids = _impressions(stack)
    accepted = 0  # postbacks answered with status 1: each must become one conversion
    unknown = 0  # postbacks with no answer (transport errors): a conversion or not
    waits: list[float] = []

    def postbacks(name: str, rate: float, seconds: float) -> dict[str, Any]:
        nonlocal accepted, unknown
        waits.append(caught_up(stack, "conversions", conversions_before + accepted))
        urls = _urls(folder, edge, aimp_ids, f"{token}-{name}", int(rate * seconds))
        result = load("-", rate, seconds, CONNECTIONS, urls=urls)
        accepted += _accepted(result)
        unknown += sum(n for kind, n in result["error_kinds"].items() if not kind.isdigit())
        return result

    (bare_port,) = probes.free_ports(1)
    bare_url = f"http://127.0.0.1:{bare_port}/imp?offer_id={OFFER_ID}&pid=1&imp_id=b{{n}}"
    bare = serve(
        [sys.executable, "-m", "bench.bare_pixel", str(bare_port)], f"http://127.0.0.1:{bare_port}/"
    )
    fixed: list[dict[str, Any]] = []
    baseline: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    try:
        warm_up = postbacks("warm", WARM_UP_RATE, WARM_UP_SECONDS)
        for n in range(ROUNDS):
            if n % 2 == 0:
                baseline.append(load(bare_url, RATE, BARE_SECONDS, CONNECTIONS))
            fixed.append(postbacks(f"fixed{n}", RATE, DURATION))
            if n % 2 == 1:
                baseline.append(load(bare_url, RATE, BARE_SECONDS, CONNECTIONS))
    finally:
        bare.terminate()
        bare.wait(10)
    for rate in STEPS:
        steps.append(postbacks(f"step{rate}", rate, STEP_SECONDS))
        if not _within(steps[-1], CAPACITY_P99_MS):
            break
    settle = caught_up(stack, "conversions", conversions_before + accepted)
    conversions = quiet(stack, "conversions") - conversions_before  # twice would show now

    sustained = max((int(s["rate"]) for s in steps if _within(s, TARGET_P99_MS)), default=0)
    capacity = max(
        ((int(s["rate"]), s["p99_ms"]) for s in steps if _within(s, CAPACITY_P99_MS)),
        default=(0, None),
    )
    share = round(statistics.median(r["json_status"].get("200:1", 0) / r["sent"] for r in fixed), 4)
    p99 = median(fixed, "p99_ms")
    checks = {
        "fixed_rate_all_accepted": all(_all_accepted(r) for r in [warm_up, *fixed]),
        "none_refused": all(
            not any(k.startswith("4") for k in r["statuses"]) for r in [warm_up, *fixed, *steps]
        ),
        "baseline_all_answered": all(r["statuses"] == {"200": r["sent"]} for r in baseline),
        "exported_once_each": accepted <= conversions <= accepted + unknown,
    }
    return {
        "benchmark": "postback_verdict",
        "figures": [
            figure(
                f"postback p50 ms @{RATE}/s",
                median(fixed, "p50_ms"),
                "ms",
                baseline=median(baseline, "p50_ms"),
                target="reported (baseline: bare pixel)",
                met=None,
            ),
            figure(
                f"postback p99 ms @{RATE}/s",
                p99,
                "ms",
                baseline=median(baseline, "p99_ms"),
                target=f"p99 <= {TARGET_P99_MS:g} ms (baseline: bare pixel)",
                met=None if QUICK else p99 <= TARGET_P99_MS and share == 1.0,
            ),
            figure(
                f"postback share answered 200 status 1 @{RATE}/s",
                share,
                "share",
                target="reported",
                met=None,
            ),
            figure(
                "postback max sustained rate/s",
                sustained,
                "postbacks/s",
                target=f"reported (p99 <= {TARGET_P99_MS:g} ms, no error or pending; "
                f"steps {', '.join(map(str, STEPS))}/s)",
                met=None,
            ),
        ],
        "details": {
            "rate": RATE,
            "duration_s": DURATION,
            "rounds": ROUNDS,
            "connections": CONNECTIONS,
            "impressions": IMPRESSIONS,
            "warm_up": warm_up,
            "fixed": fixed,
            "bare_pixel_same_rate": baseline,
            "steps": steps,
            "capacity": {"rate": capacity[0], "p99_ms": capacity[1]},
            "catch_up_waits_s": waits,
            "settle_s": settle,
            "accepted": accepted,
            "unanswered": unknown,
            "exported_conversions": conversions,
            "checks": checks,
            "ok": all(checks.values()),
        },
    }


def main() -> int:
    with bench_stack() as stack:
        result = run(stack)
    path = write_result("postback_verdict", result | {"quick": QUICK, "machine": machine()})
    print(f"{'figure':42} {'value':>10} {'bare pixel':>10}  target")
    for f in result["figures"]:
        baseline = "" if f["baseline"] is None else f["baseline"]
        print(f"{f['name']:42} {f['value']:>10} {baseline:>10}  {f['target']}")
    d = result["details"]
    for s in d["steps"]:
        answers = s["json_status"]
        print(f"  step {s['rate']:>6g}/s: p50 {s['p50_ms']} ms, p99 {s['p99_ms']} ms, {answers}")
    print(f"capacity (every verdict, p99 <= {CAPACITY_P99_MS:g} ms): {d['capacity']}")
    print(f"accepted {d['accepted']}, exported conversions {d['exported_conversions']}")
    print(f"checks: {d['checks']}")
    print(f"written: {path}")
    return 0 if d["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
