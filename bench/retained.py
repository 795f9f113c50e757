"""Benchmark: bytes per retained impression in RAM and on disk, and what they come to
at 1,000 impressions/s over a 30-day window (bench/retention.py says what each store
keeps, and for how long).

It runs after the benchmarks that send impressions through the whole stack (the
edge's, the pipeline's). Every store then holds what they made, all of it still
retained (each store keeps an impression for hours to days), and nothing else yet:
the recovery benchmark, after it, writes table entries straight into the changelog.

It reads the bytes Redis's keys hold (MEMORY USAGE of each; ``used_memory`` beyond
``used_memory_startup`` is reported beside it), the worker's RocksDB files, the
stack's Kafka log segments and the DuckDB file, over the impressions the exporter
has stored.

Target (issue 23): RAM flat in impressions retained. Redis keeps nothing per
impression since the click index moved beside the impressions table on disk, so its
growth over the impressions should round to 0 B each. The processes' RSS is judged
flat by the soak (bench.soak), which also gives these figures over half an hour.

    python -m bench retained          # after edge_pixel and pipeline, in make bench
"""

from __future__ import annotations

import time
from typing import Any

import redis

from app.forwarding.schedule import CLAIMS, DUE, HOSTS, LOG, PREFIX, TASKS
from app.ops.stack import Stack
from bench.common import QUICK, figure, quiet
from bench.retention import DAY_SECONDS, FORMULA_RATE, FORMULA_WINDOW_SECONDS, retention_figures
from bench.soak_probe import data_on_disk, key_kind

DAYS = FORMULA_WINDOW_SECONDS // DAY_SECONDS


def redis_keys_by_kind(url: str) -> dict[str, dict[str, int]]:
    """Redis's keys by kind (bench.soak_probe.key_kind), each kind's number and the
    bytes its keys hold (MEMORY USAGE): what imptrack keeps in Redis."""
    client = redis.Redis.from_url(url)
    try:
        kinds: dict[str, dict[str, int]] = {}
        for key in client.scan_iter(count=1000):
            kind = kinds.setdefault(key_kind(key.decode(errors="replace")), {"keys": 0, "bytes": 0})
            kind["keys"] += 1
            kind["bytes"] += int(client.memory_usage(key) or 0)
        return kinds
    finally:
        client.close()


DRAIN_SECONDS = 150.0
BACKLOG_KINDS = frozenset(
    key_kind(name) for name in (TASKS, CLAIMS, f"{DUE}:host", f"{PREFIX}busy:host", HOSTS, LOG)
)
"""The delivery schedule's keys that hold deliveries not yet made (app/forwarding/
schedule.py): emptied as they are delivered, whatever the retention."""


def deliveries_drained(url: str, timeout: float = DRAIN_SECONDS) -> float | None:
    """Wait until the forwarder's schedule holds no task (the benchmarks before this
    one leave a backlog of deliveries, which the schedule holds only until they are
    made, not for as long as the impressions are retained); the seconds waited, or
    None if it did not empty in ``timeout``."""
    client = redis.Redis.from_url(url)
    started = time.monotonic()
    try:
        while int(client.hlen(TASKS)) > 0:
            if time.monotonic() - started > timeout:
                return None
            time.sleep(0.5)
        return round(time.monotonic() - started, 1)
    finally:
        client.close()


def redis_bytes_beyond_startup(url: str) -> int:
    """What Redis uses beyond what it used when it started (before any key)."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("memory")
    finally:
        client.close()
    return int(info["used_memory"]) - int(info["used_memory_startup"])


def run(stack: Stack) -> dict[str, Any]:
    impressions = quiet(stack, "impressions")
    drained_after = deliveries_drained(stack.settings.redis)
    redis_grown = redis_bytes_beyond_startup(stack.settings.redis)
    redis_keys = redis_keys_by_kind(stack.settings.redis)
    # What the keys hold, not used_memory: Redis's client buffers, script cache and
    # append-only file buffer move with the load of the moment, not with what is
    # retained (the soak judges used_memory flat over half an hour). The delivery
    # schedule's tasks are held until delivered: they grow with the backlog of
    # deliveries (rate x delay), not with the impressions retained, so they are
    # reported apart; a backlog the wait above did not see drained (the benchmarks
    # before leave one) would otherwise read as retention (2026-12-04: 129 B per
    # impression, "311 GiB at 1,000/s over 30 days", from 18 MB of pending tasks).
    backlog = sum(kind["bytes"] for name, kind in redis_keys.items() if name in BACKLOG_KINDS)
    redis_kept = sum(
        kind["bytes"] for name, kind in redis_keys.items() if name not in BACKLOG_KINDS
    )
    redis_per = round(redis_kept / impressions) if impressions > 0 else None
    sample = {"disk_mb": data_on_disk(stack)}
    retained = retention_figures(sample, impressions, redis_per)
    per, gib = retained["bytes_per_impression"], retained["formula"]["gib"]
    disk_parts = [per[store] for store in ("rocksdb_disk", "kafka_disk", "duckdb_disk")]
    disk_per = None if None in disk_parts else sum(b for b in disk_parts if b is not None)
    disk_gib = [gib[store] for store in ("rocksdb_disk", "kafka_disk", "duckdb_disk")]
    at_rate = f"at {FORMULA_RATE:,}/s, {DAYS}-day window"
    figures = [
        figure(
            "RAM per retained impression (Redis)",
            float(redis_per or 0),
            "B",
            target="flat in impressions retained (0 B)",
            # What stays besides the delivery backlog is what is kept.
            met=None if QUICK or redis_per is None else redis_per == 0,
        ),
        figure(
            "Redis delivery backlog (tasks not yet delivered)",
            float(backlog),
            "B",
            target="reported (bounded by deliveries/s x delivery delay, not by retention)",
            met=None,
        ),
        figure(
            "disk per retained impression (RocksDB + Kafka + DuckDB)",
            float(disk_per or 0),
            "B",
            target="reported",
            met=None,
        ),
        figure(
            f"Redis RAM {at_rate}",
            float(gib["redis_ram"] or 0),
            "GiB",
            target="reported",
            met=None,
        ),
        figure(
            f"disk {at_rate} (Kafka: 7-day retention)",
            float(sum(g for g in disk_gib if g is not None)),
            "GiB",
            target="reported",
            met=None,
        ),
    ]
    print(
        f"retained: {impressions:,} impressions; Redis {redis_grown / 2**20:.1f} MB beyond "
        f"startup, {redis_kept:,} B in kept keys and {backlog:,} B of delivery backlog "
        f"{redis_keys} (deliveries drained after "
        f"{drained_after} s); bytes per impression {per}"
    )
    return {
        "benchmark": "retained",
        "figures": figures,
        "details": {
            "ok": impressions > 0 and redis_per is not None and disk_per is not None,
            "redis_bytes_beyond_startup": redis_grown,
            "redis_bytes_in_keys": redis_kept,
            "redis_backlog_bytes": backlog,
            "deliveries_drained_after_s": drained_after,
            "redis_keys_by_kind": redis_keys,
            **retained,
        },
    }
