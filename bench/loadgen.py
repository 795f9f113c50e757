"""An open-loop HTTP load generator: requests at a fixed rate, latency from the
moment each request was *due*, so a slow server is not hidden by the generator
waiting for it (no coordinated omission).

    python -m bench.loadgen URL --rate 1000 --duration 10 [--connections 64]
    python -m bench.loadgen URL --rate 0 ...     # closed loop: as fast as it answers
    python -m bench.loadgen - --urls FILE ...    # the URLs of FILE in turn

``{n}`` in the URL becomes the request's number. Prints one JSON object: counts,
HTTP statuses, latency percentiles, and what the answers said: ``bodies`` counts
each distinct body by its digest (``bench.loadgen.digest``; the first
``DISTINCT_BODIES`` seen, the rest as ``other``), ``json_status`` counts JSON
answers by HTTP status and their ``status`` field (``"200:1"``).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import statistics
import time

import aiohttp
import uvloop

DISTINCT_BODIES = 16


def digest(body: bytes) -> str:
    """How ``bodies`` names an answer's body: its length and a short hash."""
    return f"{len(body)}:{hashlib.sha256(body).hexdigest()[:16]}"


async def run(
    url: str, rate: float, duration: float, connections: int, urls: list[str] | None = None
) -> dict[str, float]:
    """Open loop at ``rate``; with rate 0, closed loop: ``connections`` requests at a
    time, each sent as soon as the one before it on its connection is answered."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    statuses: dict[str, int] = {}
    bodies: dict[str, int] = {}
    json_status: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=10)

    def target(n: int) -> str:
        return urls[n % len(urls)] if urls else url.replace("{n}", str(n))

    def summarise(status: int, content_type: str, body: bytes) -> None:
        key = digest(body)
        if key not in bodies and len(bodies) >= DISTINCT_BODIES:
            key = "other"
        bodies[key] = bodies.get(key, 0) + 1
        if content_type == "application/json":
            try:
                answer = json.loads(body)
            except ValueError:
                return
            if isinstance(answer, dict) and "status" in answer:
                named = f"{status}:{answer['status']}"
                json_status[named] = json_status.get(named, 0) + 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def one(n: int, due: float) -> None:
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            # From when it was due, or sent if the timer woke a little early.
            origin = min(due, time.perf_counter())
            try:
                async with session.get(target(n), allow_redirects=False) as r:
                    body = await r.read()
                    statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
                    summarise(r.status, r.content_type, body)
                    if r.status >= 400:
                        errors[str(r.status)] = errors.get(str(r.status), 0) + 1
                        return
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                return
            latencies.append(time.perf_counter() - origin)

        start = time.perf_counter() + 0.2
        if rate > 0:
            total = int(rate * duration)
            tasks = [asyncio.create_task(one(n, start + n / rate)) for n in range(total)]
            await asyncio.gather(*tasks)
        else:
            await asyncio.sleep(0.2)
            counter = iter(range(10**9))
            end = start + duration

            async def connection() -> None:
                while time.perf_counter() < end:
                    await one(next(counter), time.perf_counter())

            await asyncio.gather(*(connection() for _ in range(connections)))
            total = len(latencies) + sum(errors.values())
        elapsed = time.perf_counter() - start
    latencies.sort()

    def pct(p: float) -> float:
        return round(1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))], 2)

    return {
        "rate": rate,
        "duration_s": duration,
        "sent": total,
        "ok": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,  # type: ignore[dict-item]
        "statuses": statuses,  # type: ignore[dict-item]
        "bodies": bodies,  # type: ignore[dict-item]
        "json_status": json_status,  # type: ignore[dict-item]
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": pct(0.50) if latencies else float("nan"),
        "p99_ms": pct(0.99) if latencies else float("nan"),
        "max_ms": round(1000 * latencies[-1], 2) if latencies else float("nan"),
        "mean_ms": round(1000 * statistics.fmean(latencies), 2) if latencies else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--urls", help="a file of URLs, one per line, sent in turn")
    args = parser.parse_args()
    urls = None
    if args.urls:
        with open(args.urls) as lines:
            urls = [line.strip() for line in lines if line.strip()]
    result = uvloop.run(run(args.url, args.rate, args.duration, args.connections, urls))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
