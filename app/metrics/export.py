"""The exporter's figures: rows stored, how far behind the newest event the export
is, and the DuckDB file's size."""

from __future__ import annotations

import time
from pathlib import Path

from prometheus_client import Counter, Gauge

EXPORTED_ROWS = Counter(
    "imptrack_exported_rows_total", "Rows stored in DuckDB (new ones, not repeats).", ["table"]
)
EXPORT_LAG = Gauge(
    "imptrack_exporter_lag_seconds",
    "How far behind the newest event the export is: 0 when every record on the "
    "exported topics is stored, else the age of the newest event stored.",
)
DUCKDB_BYTES = Gauge(
    "imptrack_duckdb_file_bytes",
    "Bytes of the reporting database: the exporter's file, its write-ahead log and the "
    "analysts' snapshot.",
    ["file"],
)


def stored(counts: dict[str, int]) -> None:
    for table, count in counts.items():
        EXPORTED_ROWS.labels(table).inc(count)


def measure_lag(records_behind: int, newest_stored_ms: int | None) -> None:
    """Set the lag from how many records are not stored yet and the time of the
    newest event stored (None: none yet)."""
    if records_behind <= 0:
        EXPORT_LAG.set(0)
    elif newest_stored_ms is not None:
        EXPORT_LAG.set(max(0.0, time.time() - newest_stored_ms / 1000))


def measure_files(database: Path, snapshot: Path | None) -> None:
    files = {"database": database, "wal": database.with_name(database.name + ".wal")}
    if snapshot is not None:
        files["snapshot"] = snapshot
    for name, path in files.items():
        try:
            DUCKDB_BYTES.labels(name).set(path.stat().st_size)
        except OSError:
            DUCKDB_BYTES.labels(name).set(0)
