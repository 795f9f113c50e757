"""The baseline for the forwarder: a bare aiohttp client sending ``COUNT`` GETs to
``URL`` (``{n}`` becomes the request's number), ``CONNECTIONS`` at a time, with no
schedule, Redis or broker. Prints ``{"sent", "failed", "seconds", "cpu_seconds"}``
as JSON (``cpu_seconds``: this process's CPU time while sending).

    python -m bench.bare_client URL COUNT CONNECTIONS
"""

from __future__ import annotations

import asyncio
import sys
import time

import aiohttp
import orjson
import uvloop


async def send(url: str, count: int, connections: int) -> dict[str, float]:
    numbers = iter(range(count))
    failed = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def one_connection() -> None:
            nonlocal failed
            for n in numbers:
                async with session.get(url.replace("{n}", str(n))) as response:
                    await response.read()
                    failed += response.status != 200

        start, cpu_start = time.perf_counter(), time.process_time()
        await asyncio.gather(*(one_connection() for _ in range(connections)))
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {"sent": count, "failed": failed, "seconds": round(seconds, 3), "cpu_seconds": cpu}


def main() -> None:
    url, count, connections = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    print(orjson.dumps(uvloop.run(send(url, count, connections))).decode())


if __name__ == "__main__":
    main()
