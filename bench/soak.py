"""The soak (``make soak``): the whole stack for SOAK_SECONDS (1800, 30 minutes) at
half the pipeline's capacity, measured first in the same run on the same stack;
memory of every process (the Kafka node(s) and Redis included) and every consumer's
lag are sampled every SAMPLE_SECONDS (5) and must level off over the soak's last
ten minutes (bench.soak_report).

1. A stack of its own (Apache Kafka, Redis, EDGE_PROCESSES edge processes, 2 unless
   set; WORKER_PROCESSES and the other settings from the environment), an offer that
   forwards every impression to a local sink (bench.sink) and takes clicks and
   postbacks. The worker's and the exporter's caches get ceilings small enough to
   fill within the soak (CACHE_CEILINGS).
2. Capacity: pixels driven as fast as the *pipeline* absorbs them for
   CAPACITY_SECONDS (90): a closed-loop burst fills a backlog, then open-loop slices
   at the rate the exporter stores impressions, plus what keeps a few seconds of
   backlog queued, so the worker never waits and the edge is not driven far beyond
   it (a closed loop at the edge's pace takes the worker's CPU). Capacity is the
   rate impressions were exported at after the phase's first
   CAPACITY_WARM_UP_SECONDS, the backlog never empty meanwhile.
3. Soak: bench.loadgen at half that rate (requests/s, open loop, in chunks of
   CHUNK_SECONDS), a mix of pixels, clicks and postbacks. Redis's keys are counted by
   kind as it begins and once it is over.
4. Load stops; every backlog must drain to 0 within DRAIN_SECONDS. Then every
   pixel, click and postback the edge accepted must be in DuckDB once, and every
   impression at the sink once.

The stack starts its own Kafka (app/ops/local_kafka), unless SOAK_KAFKA_BROKER names a
cluster (``host:port[,host:port...]``) to run on instead; that cluster's memory is
not sampled. It must have none of imptrack's topics or consumer groups yet (a fresh
cluster, or them deleted): the soak would count their records as its own, so it
refuses to start (exit status 2).

Prints the figures and the verdicts (bench.soak_report), writes
``bench/results/soak.json`` and ``bench/results/soak.png``; exit status 1 if a
criterion or a check fails.

    python -m bench.soak                   # SOAK_SECONDS=60 for a short run
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import aiohttp
import uvloop
from aiokafka.admin import AIOKafkaAdminClient

from app.edge.api_keys import HEADER
from app.edge.pixel import TRANSPARENT_GIF
from app.events import kinds
from app.installation_secrets import load_api_key
from app.ops import probes
from app.ops.stack import Stack
from bench import loadgen, soak_report
from bench.common import RESULTS, apply_catalog, bench_stack, machine, serve, write_result
from bench.soak_probe import (
    GROUP_TOPICS,
    LagProbe,
    cpu_seconds,
    data_on_disk,
    rss_mb,
    service_names,
    stack_processes,
)

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "1800"))
SAMPLE_SECONDS = float(os.environ.get("SAMPLE_SECONDS", "5"))
CAPACITY_SECONDS = float(os.environ.get("CAPACITY_SECONDS", "90"))
EDGE_PROCESSES = os.environ.get("EDGE_PROCESSES", "2")
SOAK_KAFKA_BROKER = os.environ.get("SOAK_KAFKA_BROKER") or None
# The caches' ceilings for the soak, smaller than the defaults (64 and 512) so that
# they fill before the last ten minutes, which are judged: a cache filling up grows
# like a leak until it is full, and only a full one shows whether anything else
# grows. With the defaults the same caches fill later, at the same pace, and stop at
# their own ceilings.
CACHE_CEILINGS = {
    "WORKER_TABLE_MEMORY_MB": os.environ.get("WORKER_TABLE_MEMORY_MB", "16"),
    "EXPORTER_MEMORY_MB": os.environ.get("EXPORTER_MEMORY_MB", "64"),
}
# Redis holds two click-index keys per tracked impression for its offer's view-through
# window (a day by default; forward dedup keeps one mark per partition, and a key per
# conversion revision told for FORWARD_DEDUP_SECONDS): its memory is bounded by rate x
# window x bytes per impression, which a day-long window reaches only after a day.
# The soak shortens both windows to REDIS_WINDOW seconds so Redis reaches that bound
# before the judged window, and reports the bytes per impression the bound is made of
# (bench/README.md, "Redis").
REDIS_WINDOW_SECONDS = int(os.environ.get("SOAK_REDIS_WINDOW_SECONDS", "300"))
CHUNK_SECONDS = 60.0
LAUNCH_LEAD_SECONDS = 0.5  # a loadgen process starts sending about this long after launch
FILL_SECONDS = 2.0
SLICE_SECONDS = 1.0
BACKLOG_SECONDS = 3.0  # of the pipeline's work kept queued while measuring capacity
CAPACITY_WARM_UP_SECONDS = 60.0
"""Apache Kafka's JVM compiles its hot paths in its first minute or two under load (C2
took 40-60 % of a core in the broker's first minute here): measured over the first
25 s, the capacity came out at 87 impressions/s against 259 a minute later."""
SETTLE_SECONDS = 240.0
DRAIN_SECONDS = 60.0
CONNECTIONS = 256
PREPARED = 100  # impressions and clicks made first, for the postbacks to name
PREPARED_PER_CHUNK = 20  # and before each chunk, within the view-through window
OFFER_ID = 900
# Of every 50 requests: 46 pixels, 3 clicks, 1 postback.
MIX_PERIOD = 50
CLICK_SLOTS = (10, 25, 40)
POSTBACK_SLOTS = (49,)
GIF = loadgen.digest(TRANSPARENT_GIF)


class BrokerInUse(RuntimeError):
    """SOAK_KAFKA_BROKER names a broker imptrack has already used."""


async def refuse_a_used_broker(broker: str) -> None:
    """Before the stack starts on it: a broker that has any of imptrack's topics or
    consumer groups would mix their records and offsets into the soak's counts."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        ours = {*kinds.EVENT_TOPICS, *kinds.CHANGELOG_TOPICS, kinds.CATALOG_TOPIC}
        topics = set(await admin.list_topics()) & ours
        groups = {group for group, *_ in await admin.list_consumer_groups()} & set(GROUP_TOPICS)
    finally:
        await admin.close()
    if topics or groups:
        raise BrokerInUse(
            f"the broker {broker} has imptrack's topics ({', '.join(sorted(topics)) or 'none'}) "
            f"or consumer groups ({', '.join(sorted(groups)) or 'none'}) already; the soak "
            "would count their records as its own: give it a fresh broker, or delete these"
        )


def catalog(sink_port: int) -> str:
    return f"""
advertisers: [{{id: {OFFER_ID}, name: Soak advertiser}}]
affiliates: [{{id: {OFFER_ID}, name: Soak affiliate}}]
offers:
  - id: {OFFER_ID}
    title: Soak offer
    advertiser_id: {OFFER_ID}
    allow_impressions: true
    view_through_window: {REDIS_WINDOW_SECONDS}
    impressions_url: "http://127.0.0.1:{sink_port}/imp?a={{aimp_id}}&sub1={{sub1}}"
    tracking_url: "https://adv.example/c?clickid={{clickid}}&aimp_id={{aimp_id}}"
    payments:
      - {{type: CPM, revenue: "2.00", payout: "1.40"}}
      - {{type: CPA, revenue: "10.00", payout: "7.00"}}
"""


def mix_shares() -> dict[str, float]:
    """Each kind's share of the soak's requests."""
    clicks, postbacks = len(CLICK_SLOTS), len(POSTBACK_SLOTS)
    return {
        "pixels": (MIX_PERIOD - clicks - postbacks) / MIX_PERIOD,
        "clicks": clicks / MIX_PERIOD,
        "postbacks": postbacks / MIX_PERIOD,
    }


class Monitor:
    """Samples memory and lag every SAMPLE_SECONDS, labelled with the current phase."""

    def __init__(self, stack: Stack, probe: LagProbe) -> None:
        self.stack = stack
        self.probe = probe
        self.processes = stack_processes(stack)
        self.samples: list[dict[str, Any]] = []
        self.phase = "start"
        self.started = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)

    async def sample(self) -> dict[str, Any]:
        t = self.now()
        rss = {name: rss_mb(pid) for name, pid in self.processes.items()}
        cpu = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        reading = await self.probe.sample()
        disk = data_on_disk(self.stack)
        self.samples.append(
            {"t": t, "phase": self.phase, "rss_mb": rss, "cpu_s": cpu, **reading, "disk_mb": disk}
        )
        return reading

    async def run(self) -> None:
        """A sample at 0, SAMPLE_SECONDS, twice that ... after the start, or right
        after the one before if that took longer."""
        n = 0
        while True:
            await self.sample()
            n += 1
            await asyncio.sleep(max(0.0, n * SAMPLE_SECONDS - self.now()))


async def _get(session: aiohttp.ClientSession, url: str, header: str) -> str:
    async with session.get(url, allow_redirects=False) as response:
        await response.read()
        if response.status not in (200, 302) or not response.headers.get(header):
            raise RuntimeError(f"{url} answered {response.status} without {header}")
        return response.headers[header]


async def prepare(
    edge: str, api_key: str, prefix: str = "", count: int = PREPARED
) -> dict[str, list[str]]:
    """``count`` impressions and clicks for the soak's postbacks to name: their
    aimp_ids and clickids (the pixel shows its aimp_id to a caller with the API key)."""
    base = f"{edge}/{{}}?offer_id={OFFER_ID}&pid={OFFER_ID}&imp_id=prep{prefix}{{}}"
    async with aiohttp.ClientSession(headers={HEADER: api_key}) as session:
        aimp_ids = [await _get(session, base.format("imp", n), "X-Aimp-Id") for n in range(count)]
        clickids = [await _get(session, base.format("click", n), "X-Clickid") for n in range(count)]
    return {"aimp_ids": aimp_ids, "clickids": clickids}


def gifs(run: dict[str, Any]) -> int:
    return int(run["bodies"].get(GIF, 0))


async def measure_capacity(edge: str, monitor: Monitor) -> dict[str, Any]:
    """Pixels as fast as the pipeline stores them; the export rate while it had a
    backlog all along (see the module's docstring)."""
    url = f"{edge}/imp?offer_id={OFFER_ID}&pid={OFFER_ID}&imp_id=cap{{n}}&sub1=capacity"
    exported_before = (await monitor.probe.exported())["impressions"]
    began = time.monotonic()
    runs = [await loadgen.run(url, 0, FILL_SECONDS, 64)]
    readings: list[tuple[float, int, int]] = []  # (time, exported, backlog)
    while True:
        now = time.monotonic()
        exported = (await monitor.probe.exported())["impressions"]
        backlog = exported_before + sum(gifs(r) for r in runs) - exported
        readings.append((now, exported, backlog))
        if now - began >= CAPACITY_SECONDS:
            break
        recent = [r for r in readings if r[0] >= now - 3.0]
        span = recent[-1][0] - recent[0][0]
        pace = (recent[-1][1] - recent[0][1]) / span if span > 0 else 1000.0
        target = max(2000.0, BACKLOG_SECONDS * pace)
        rate = min(20_000.0, max(100.0, pace + (target - backlog) / 2))
        runs.append(await loadgen.run(url, rate, SLICE_SECONDS, 64))
    window = [r for r in readings if r[0] >= began + CAPACITY_WARM_UP_SECONDS]
    seconds = window[-1][0] - window[0][0]
    capacity = (window[-1][1] - window[0][1]) / seconds
    answered = sum(gifs(r) for r in runs)
    return {
        "seconds": round(time.monotonic() - began, 1),
        "window_s": round(seconds, 1),
        "capacity_per_s": round(capacity, 1),
        "edge_answered": answered,
        "edge_errors": sum(r["errors"] for r in runs),
        "slice_rates": [r["rate"] for r in runs],
        "backlog_min_in_window": min(r[2] for r in window),
        "backlog_max_in_window": max(r[2] for r in window),
        # A backlog that ran dry means the worker waited for input: capacity understated.
        "saturated": min(r[2] for r in window[:-1]) > 0,
    }


async def settled(monitor: Monitor, sink: str, expected: int) -> float:
    """Wait until ``expected`` impressions are exported, every one delivered to the sink
    and no consumer behind; seconds waited."""
    began = time.monotonic()
    behind = ""
    async with aiohttp.ClientSession() as session:
        while time.monotonic() - began < SETTLE_SECONDS:
            reading = await monitor.sample()
            async with session.get(f"{sink}/count") as response:
                delivered = (await response.json())["distinct"]
            exported = reading["exported"].get("impressions", 0)
            lagging = {name: n for name, n in reading["lag"].items() if n != 0}
            if min(exported, delivered) >= expected and not lagging:
                return round(time.monotonic() - began, 1)
            behind = (
                f"{exported} of {expected} impressions exported, {delivered} delivered; "
                f"behind: {lagging or 'nothing'}"
            )
            await asyncio.sleep(1.0)
    raise RuntimeError(f"the stack did not catch up within {SETTLE_SECONDS:.0f} s: {behind}")


def _urls(edge: str, chunk: int, count: int, prepared: dict[str, list[str]], token: str) -> str:
    """``count`` requests of the mix, as the lines of a loadgen --urls file."""
    lines = []
    q = f"offer_id={OFFER_ID}&pid={OFFER_ID}"
    for n in range(count):
        slot = n % MIX_PERIOD
        if slot in POSTBACK_SLOTS:
            by = "aimp_id" if (n // MIX_PERIOD) % 2 == 0 else "clickid"
            ids = prepared[f"{by}s"]
            named = ids[(n // MIX_PERIOD) % len(ids)]
            query = urllib.parse.urlencode(
                {by: named, "action_id": f"{token}-{chunk}-{n}", "status": 1}
            )
            lines.append(f"{edge}/postback?{query}")
        elif slot in CLICK_SLOTS:
            # The imp_id of a pixel a few hundred requests before: linked through Redis.
            lines.append(f"{edge}/click?{q}&imp_id=s{chunk}-{max(0, n - 300)}&sub1=c{slot}")
        else:
            lines.append(f"{edge}/imp?{q}&imp_id=s{chunk}-{n}&sub1=placement-{n % 5}")
    return "\n".join(lines) + "\n"


async def soak_load(
    edge: str, api_key: str, rate: float, folder: Path, prepared: dict[str, list[str]]
) -> list[dict[str, Any]]:
    """bench.loadgen at ``rate`` for SOAK_SECONDS, one process per chunk, each launched
    so that it starts sending as the one before it stops; each chunk's result.

    Each chunk's postbacks name impressions and clicks made just before it (added to
    ``prepared``): the soak's view-through window is REDIS_WINDOW_SECONDS, and a
    postback naming an impression older than that is rightly refused (a 30-minute
    run that named the first ones throughout had 1% of its requests refused)."""
    token = os.urandom(3).hex()
    chunks = math.ceil(SOAK_SECONDS / CHUNK_SECONDS)
    launched: list[asyncio.subprocess.Process] = []
    start = 0.0  # set once the first chunk's IDs are made
    for k in range(chunks):
        seconds = min(CHUNK_SECONDS, SOAK_SECONDS - k * CHUNK_SECONDS)
        path = folder / f"soak-urls-{k}.txt"
        named = await prepare(edge, api_key, f"c{k}-", PREPARED_PER_CHUNK)
        for kind, ids in named.items():
            prepared[kind].extend(ids)
        if k == 0:
            start = time.monotonic() + LAUNCH_LEAD_SECONDS
        path.write_text(_urls(edge, k, int(rate * seconds), named, token))
        await asyncio.sleep(
            max(0.0, start + k * CHUNK_SECONDS - LAUNCH_LEAD_SECONDS - time.monotonic())
        )
        launched.append(
            await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bench.loadgen",
                "-",
                "--urls",
                str(path),
                "--rate",
                str(rate),
                "--duration",
                str(seconds),
                "--connections",
                str(CONNECTIONS),
                stdout=asyncio.subprocess.PIPE,
            )
        )
    results = []
    for process in launched:
        out, _ = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"a load generator exited with {process.returncode}")
        results.append(json.loads(out))
    return results


async def drain(monitor: Monitor) -> float | None:
    """Seconds until every backlog is 0 after the load stopped (None: not within
    DRAIN_SECONDS)."""
    began = time.monotonic()
    while time.monotonic() - began < DRAIN_SECONDS:
        reading = await monitor.sample()
        if all(n == 0 for n in reading["lag"].values()):
            return round(time.monotonic() - began, 1)
        await asyncio.sleep(1.0)
    return None


async def _sink_count(sink: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{sink}/count") as response:
        body: dict[str, Any] = await response.json()
        return body


async def soak(stack: Stack, sink: str) -> dict[str, Any]:
    edge = stack.settings.edge_url
    probe = LagProbe(stack)
    monitor = Monitor(stack, probe)  # first: it refuses a stack with a process missing
    await probe.start()
    sampling = asyncio.create_task(monitor.run())
    try:
        exported_before = await probe.exported()
        prepared = await prepare(edge, load_api_key(stack.settings))
        monitor.phase = "capacity"
        capacity = await measure_capacity(edge, monitor)
        monitor.phase = "settle"
        pixels = PREPARED + capacity["edge_answered"]
        settle_s = await settled(monitor, sink, pixels)
        rate = round(capacity["capacity_per_s"] / 2)
        print(
            f"capacity {capacity['capacity_per_s']:,.0f} impressions/s exported "
            f"(saturated: {capacity['saturated']}); soak at {rate:,} requests/s "
            f"for {SOAK_SECONDS:g} s",
            flush=True,
        )
        keys_before = await probe.redis_keys()
        monitor.phase = "soak"
        soak_started = monitor.now() + LAUNCH_LEAD_SECONDS
        chunks = await soak_load(
            edge, load_api_key(stack.settings), rate, stack.settings.home, prepared
        )
        monitor.phase = "drain"
        drained = await drain(monitor)
        sampling.cancel()
        monitor.phase = "end"
        await asyncio.sleep(2 * SAMPLE_SECONDS)  # a duplicate export would show by now
        final = await monitor.sample()
        keys_after = await probe.redis_keys()
        delivered = await _sink_count(sink)
    finally:
        sampling.cancel()
        # Cancelled before its clients stop, not in the middle of a request.
        await asyncio.gather(sampling, return_exceptions=True)
        await probe.stop()
    return {
        "capacity": capacity | {"settle_s": settle_s},
        "rate": rate,
        "soak_started_t": soak_started,
        "processes": monitor.processes,
        "services": service_names(stack),
        "redis_keys": {"soak_start": keys_before, "end": keys_after},
        "chunks": chunks,
        "drain_s": drained,
        "accepted": _accepted(prepared, capacity, chunks),
        "exported": {k: n - exported_before.get(k, 0) for k, n in final["exported"].items()},
        "sink": delivered,
        "samples": monitor.samples,
    }


def _accepted(
    prepared: dict[str, list[str]], capacity: dict[str, Any], chunks: list[dict[str, Any]]
) -> dict[str, int]:
    """What the edge acknowledged: each must be in DuckDB once."""
    return {
        "impressions": len(prepared["aimp_ids"])
        + capacity["edge_answered"]
        + sum(gifs(c) for c in chunks),
        "clicks": len(prepared["clickids"]) + sum(int(c["statuses"].get("302", 0)) for c in chunks),
        "conversions": sum(int(c["json_status"].get("200:1", 0)) for c in chunks)
        + sum(int(c["json_status"].get("202:1", 0)) for c in chunks),
    }


def soak_config(stack: Stack) -> dict[str, Any]:
    s = stack.settings
    return {
        "soak_seconds": SOAK_SECONDS,
        "sample_seconds": SAMPLE_SECONDS,
        "capacity_seconds": CAPACITY_SECONDS,
        "edge_processes": int(EDGE_PROCESSES),
        "worker_processes": s.worker_processes,
        "forwarder_processes": s.forwarder_processes,
        "mix": mix_shares(),
        "connections": CONNECTIONS,
        "cache_ceilings_mb": {name: int(mb) for name, mb in CACHE_CEILINGS.items()},
        "redis_window_seconds": REDIS_WINDOW_SECONDS,
        "broker": SOAK_KAFKA_BROKER
        or f"Apache Kafka started by the stack, {s.kafka_nodes} node(s), "
        f"{s.kafka_heap_mb} MB heap each",
    }


def main() -> int:
    started = time.monotonic()
    (sink_port,) = probes.free_ports(1)
    sink_url = f"http://127.0.0.1:{sink_port}"
    sink = serve([sys.executable, "-m", "bench.sink", str(sink_port)], f"{sink_url}/count")
    try:
        broker = {}
        if SOAK_KAFKA_BROKER:
            asyncio.run(refuse_a_used_broker(SOAK_KAFKA_BROKER))
            broker["KAFKA_BROKER"] = SOAK_KAFKA_BROKER
        with bench_stack(
            EDGE_PROCESSES=EDGE_PROCESSES,
            FORWARD_DEDUP_SECONDS=str(REDIS_WINDOW_SECONDS),
            **CACHE_CEILINGS,
            **broker,
        ) as stack:
            apply_catalog(stack, catalog(sink_port))
            raw = uvloop.run(soak(stack, sink_url))
            config = soak_config(stack)
    except BrokerInUse as refused:
        print(f"soak: {refused}", file=sys.stderr)
        return 2
    finally:
        sink.terminate()
        sink.wait(10)
    result = soak_report.judge(raw, config)
    result |= {"seconds": round(time.monotonic() - started, 1), "machine": machine()}
    path = write_result("soak", result)
    plot = soak_report.plot(result, RESULTS / "soak.png")
    soak_report.print_report(result)
    print(f"written: {path}, {plot} ({result['seconds']:g} s)")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
