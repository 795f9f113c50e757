"""Bytes per retained impression and the size they make (bench/retention.py)."""

from __future__ import annotations

from bench.retention import (
    DAY_SECONDS,
    KAFKA_RETENTION_SECONDS,
    disk_megabytes,
    retention_figures,
)

MB = 2**20


def _sample(**disk: dict[str, float]) -> dict[str, object]:
    return {"t": 0.0, "disk_mb": disk}


def test_each_store_per_impression_and_at_a_thousand_a_second_over_thirty_days() -> None:
    sample = _sample(
        worker={"rocksdb_sst_mb": 60.0, "rocksdb_wal_mb": 40.0},
        broker={"kafka_log_mb": 300.0},
        exporter={"duckdb_mb": 50.0},
    )
    figures = retention_figures(sample, impressions=1_000_000, redis_bytes_per_impression=250)

    per = figures["bytes_per_impression"]
    assert per == {
        "redis_ram": 250,
        "rocksdb_disk": round(100 * MB / 1_000_000),
        "kafka_disk": round(300 * MB / 1_000_000),
        "duckdb_disk": round(50 * MB / 1_000_000),
    }
    gib = figures["formula"]["gib"]
    # Redis: 1,000/s x 30 days x 250 B.
    assert gib["redis_ram"] == round(1000 * 30 * DAY_SECONDS * 250 / 2**30, 1)
    # Kafka keeps its records for its own retention (7 days), not the window.
    assert figures["retained_seconds"]["kafka_disk"] == KAFKA_RETENTION_SECONDS
    assert gib["kafka_disk"] == round(1000 * KAFKA_RETENTION_SECONDS * per["kafka_disk"] / 2**30, 1)
    # The table outlives the window by the expiry's margin.
    assert figures["retained_seconds"]["rocksdb_disk"] == 30 * DAY_SECONDS + 3600


def test_workers_add_up_and_a_store_not_read_is_none_not_zero() -> None:
    sample = _sample(
        worker={"rocksdb_sst_mb": 1.0, "rocksdb_wal_mb": 2.0},
        **{"worker-2": {"rocksdb_sst_mb": 3.0, "rocksdb_wal_mb": 4.0}},
        exporter={"duckdb_mb": 5.0},
    )
    assert disk_megabytes(sample) == {"rocksdb": 10.0, "kafka": None, "duckdb": 5.0}

    figures = retention_figures(sample, impressions=0, redis_bytes_per_impression=None)
    assert set(figures["bytes_per_impression"].values()) == {None}
    assert set(figures["formula"]["gib"].values()) == {None}
