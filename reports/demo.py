"""``make demo``: a whole run on the embedded stack, from pixels to the Daily slice."""

from __future__ import annotations

import asyncio
import random
import shutil
import sys
import time

import aiohttp

from app import probes
from app.settings import Settings, settings
from app.stack import Stack
from reports.formatting import render
from reports.reading import read_slice

CONCURRENCY = 64
EXPORT_WAIT_SECONDS = 120


def _progress(done: int, total: int, started: float) -> None:
    width = 40
    filled = width * done // total
    rate = done / max(time.monotonic() - started, 1e-6)
    sys.stderr.write(
        f"\r  [{'#' * filled}{'.' * (width - filled)}] {done}/{total}  {rate:,.0f} req/s"
    )
    sys.stderr.flush()


async def send_pixels(s: Settings, total: int) -> int:
    """Fire ``total`` pixel requests over real HTTP; return how many got the GIF."""
    got_gif = 0
    done = 0
    started = time.monotonic()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(total):
        queue.put_nowait(n)

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal got_gif, done
        while not queue.empty():
            n = queue.get_nowait()
            params = {
                "offer_id": str(random.randint(1, 5)),
                "pid": str(random.randint(1, 20)),
                "imp_id": f"demo-{n}",
                "sub1": random.choice(["banner", "sidebar", "footer"]),
                "sub2": f"campaign {n % 7}",
            }
            async with session.get(f"{s.edge_url}/imp", params=params) as response:
                body = await response.read()
                if response.status == 200 and response.content_type == "image/gif" and body:
                    got_gif += 1
            done += 1
            if done % 100 == 0 or done == total:
                _progress(done, total, started)

    async with aiohttp.ClientSession(headers={"User-Agent": "imptrack-demo/1.0"}) as session:
        await asyncio.gather(*(client(session) for _ in range(CONCURRENCY)))
    sys.stderr.write("\n")
    return got_gif


def wait_for_export(s: Settings, expected: int) -> int:
    deadline = time.monotonic() + EXPORT_WAIT_SECONDS
    exported = 0
    while time.monotonic() < deadline:
        status = probes.http_json(f"{s.exporter_url}/healthz")
        exported = int(status["exported"]["impressions"]) if status else exported
        if exported >= expected:
            return exported
        time.sleep(0.2)
    return exported


def run_demo(requests: int) -> int:
    s = settings()
    # The demo owns its home: a fresh DuckDB file holds exactly this run's impressions.
    shutil.rmtree(s.home, ignore_errors=True)
    stack = Stack(s)
    print(f"Starting the embedded stack under {s.home} ...")
    try:
        stack.up(on_ready=lambda name, took: print(f"  {name:<9} ready in {took:.1f} s"))
        print(f"\nSending {requests} impression pixels to {s.edge_url}/imp ...")
        accepted = asyncio.run(send_pixels(s, requests))
        print(f"  {accepted} of {requests} answered with the GIF")
        print("Waiting for the exporter to write them to DuckDB ...")
        exported = wait_for_export(s, accepted)
        daily = read_slice("daily", None, None, "UTC")
        print("\nDaily slice (imptrack report daily):\n")
        print(render(daily, "table"))
        reported = sum(row[daily.columns.index("impressions")] for row in daily.rows)
        print(f"\nDuckDB file: {s.duckdb_path}")
        print(f"  read it again: IMPTRACK_HOME={s.home} .venv/bin/imptrack report daily")
    finally:
        print("\nStopping ...")
        stack.down()
    if reported != accepted or exported != accepted:
        print(f"MISMATCH: {accepted} GIFs answered, {reported} impressions reported")
        return 1
    print(f"OK: {accepted} GIFs answered = {reported} impressions in the Daily slice")
    return 0
