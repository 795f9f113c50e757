"""Bytes per retained impression, in RAM and on disk, and the size they make at a
given rate and retention (issue 23's memory target: "report bytes of RAM and of
disk per retained impression, and the formula for 1,000/s over a 30-day window").

Each store keeps an impression for its own time, so each gives its own term:

- **Redis (RAM)**: nothing per retained impression. It holds the delivery schedule
  (what is due, bounded by the forwarder's backlog), the breakers, one forward-dedup
  mark and one links owner per partition; the click index is on disk beside the
  impressions table. Its bytes per impression are the soak's
  ``bytes_per_impression_held`` (bench.soak_report.redis_figures), which should
  come out as 0.
- **The processes' RSS (RAM)**: none per impression. Their caches have ceilings and
  the soak judges their memory flat over its last ten minutes; what they hold is
  in the soak's memory table, not in this formula.
- **The worker's RocksDB (disk)**: the ``impressions`` table, one entry per envelope,
  and the clicks' links index beside it (two entries per impression with an
  ``imp_id``, one without: app.attribution.click_links), kept for the longest
  view-through window plus the expiry's margin (agents/impressions_expiry.py), with
  the small ``clicks`` and ``conversions`` tables beside it; SST files and
  write-ahead logs, over the impressions recorded.
- **Kafka (disk)**: every topic's log segments (the impression's envelope, its
  recorded, forward-task and export records, its delivery's attempt, the
  changelogs), one replica, kept for the topics' retention: Apache Kafka's default
  of 7 days, which imptrack does not change.
- **DuckDB (disk)**: the exported rows of an impression and of its delivery, kept
  as long as the analysts keep them (no retention: the formula takes the window).

A soak is short beside any of these retentions, so every impression it made is
still retained at its end: bytes per impression is each store's size over the
impressions made.
"""

from __future__ import annotations

from typing import Any

# An entry of the impressions table outlives the longest window by this.
from agents.impressions_expiry import MARGIN_SECONDS

DAY_SECONDS = 86_400
KAFKA_RETENTION_SECONDS = 7 * DAY_SECONDS
"""Apache Kafka's ``log.retention.hours`` default (168); imptrack's topics set none."""
FORMULA_RATE = 1000  # impressions/s
FORMULA_WINDOW_SECONDS = 30 * DAY_SECONDS
MB = 2**20


def _per_impression(megabytes: float | None, impressions: int) -> int | None:
    if megabytes is None or impressions <= 0:
        return None
    return round(megabytes * MB / impressions)


def disk_megabytes(sample: dict[str, Any]) -> dict[str, float | None]:
    """Each disk store's size in a soak sample (``disk_mb``), all workers together;
    None for a store the soak could not read (an external broker)."""
    disk = sample.get("disk_mb", {})
    workers = [
        figures for name, figures in disk.items() if name == "worker" or name.startswith("worker-")
    ]
    rocksdb = (
        sum(w.get("rocksdb_sst_mb", 0.0) + w.get("rocksdb_wal_mb", 0.0) for w in workers)
        if workers
        else None
    )
    return {
        "rocksdb": rocksdb,
        "kafka": disk.get("broker", {}).get("kafka_log_mb"),
        "duckdb": disk.get("exporter", {}).get("duckdb_mb"),
    }


def retention_figures(
    last_sample: dict[str, Any], impressions: int, redis_bytes_per_impression: int | None
) -> dict[str, Any]:
    """Bytes per retained impression in each store at the soak's end, with
    ``impressions`` made and all retained; and what each comes to at
    :data:`FORMULA_RATE` over :data:`FORMULA_WINDOW_SECONDS` (Kafka over its own
    retention, which the window exceeds)."""
    disk = disk_megabytes(last_sample)
    per = {
        "redis_ram": redis_bytes_per_impression,
        "rocksdb_disk": _per_impression(disk["rocksdb"], impressions),
        "kafka_disk": _per_impression(disk["kafka"], impressions),
        "duckdb_disk": _per_impression(disk["duckdb"], impressions),
    }
    held = {
        "redis_ram": FORMULA_WINDOW_SECONDS,
        "rocksdb_disk": FORMULA_WINDOW_SECONDS + MARGIN_SECONDS,
        "kafka_disk": min(KAFKA_RETENTION_SECONDS, FORMULA_WINDOW_SECONDS),
        "duckdb_disk": FORMULA_WINDOW_SECONDS,
    }
    at_rate = {
        store: None if b is None else round(FORMULA_RATE * held[store] * b / 2**30, 1)
        for store, b in per.items()
    }
    return {
        "impressions": impressions,
        "bytes_per_impression": per,
        "retained_seconds": held,
        "formula": {
            "rate_per_s": FORMULA_RATE,
            "window_s": FORMULA_WINDOW_SECONDS,
            "gib": at_rate,
        },
    }


def print_retention(r: dict[str, Any]) -> None:
    per, gib, held = r["bytes_per_impression"], r["formula"]["gib"], r["retained_seconds"]
    what = {
        "redis_ram": "Redis, RAM (schedule and marks: none per impression)",
        "rocksdb_disk": "worker RocksDB, disk (table and links, window + 1 h)",
        "kafka_disk": "Kafka logs, disk, one replica (topic retention)",
        "duckdb_disk": "DuckDB, disk (kept by the analysts)",
    }
    print(
        f"per retained impression ({r['impressions']:,} impressions, all retained), and at "
        f"{r['formula']['rate_per_s']:,}/s with a {r['formula']['window_s'] // DAY_SECONDS}-day "
        "window; the processes' RSS is flat (memory table), not per impression:"
    )
    for store, label in what.items():
        b = per[store]
        size = "-" if gib[store] is None else f"{gib[store]:,.1f} GiB"
        print(
            f"  {label:<50} {'-' if b is None else f'{b:,} B':>9}  x "
            f"{held[store] // DAY_SECONDS:>2} days = {size}"
        )
