"""The analysts' copy of the reporting database.

DuckDB lets one process hold a file for writing and no other process open it at
all meanwhile, not even read-only. The exporter therefore writes its own file
(``DATA_DIR/exporter/imptrack.duckdb``) and every few seconds publishes a snapshot
of it as ``DATA_DIR/imptrack.duckdb``: a checkpoint (so the file alone holds every
committed batch), a copy beside the target, then an atomic rename over it. A
reader that has the old snapshot open keeps reading it (the rename does not touch
an open file); the next one opens the new. Readers never lock out the exporter,
and the snapshot is always a whole, consistent database, at most a few seconds old.

Copies cost time in proportion to the file; the exporter publishes no more often
than 20 times what the last copy took, so a large database cannot make the export
spend most of its time copying.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import duckdb

log = logging.getLogger("imptrack.snapshot")

COPY_SHARE = 20  # publish at most once per this many copy durations


class SnapshotPublisher:
    def __init__(self, source: Path, target: Path, every_seconds: float) -> None:
        self.source = source
        self.target = target
        self.every_seconds = every_seconds
        self.published_at: float | None = None  # wall clock, for /healthz
        self.last_copy_seconds = 0.0
        self.published = 0
        self._last_monotonic: float | None = None
        self._source_fd: int | None = None

    def due(self) -> bool:
        if self._last_monotonic is None:
            return True
        wait = max(self.every_seconds, COPY_SHARE * self.last_copy_seconds)
        return time.monotonic() - self._last_monotonic >= wait

    def publish(self, con: duckdb.DuckDBPyConnection) -> None:
        """Checkpoint ``con`` (the writer of ``source``) and publish a copy. Call it on
        the thread that writes, between batches, so no write lands mid-copy."""
        started = time.monotonic()
        con.execute("CHECKPOINT")
        partial = self.target.with_name(f".{self.target.name}.{os.getpid()}.partial")
        self._copy_source(partial)
        os.replace(partial, self.target)
        self.last_copy_seconds = time.monotonic() - started
        self._last_monotonic = time.monotonic()
        self.published_at = time.time()
        self.published += 1
        log.debug("published %s in %.3f s", self.target, self.last_copy_seconds)

    def _copy_source(self, partial: Path) -> None:
        # DuckDB guards its file with a POSIX record lock, and POSIX drops every lock a
        # process holds on a file when *any* of its descriptors of that file closes: a
        # plain copy (open, read, close) released the exporter's lock after the first
        # snapshot, and another process could then open the live file for writing.
        # So the source is read through one descriptor, kept open until close().
        if self._source_fd is None:
            self._source_fd = os.open(self.source, os.O_RDONLY)
        size = os.fstat(self._source_fd).st_size
        with open(partial, "wb") as out:
            copied = 0
            while copied < size:
                sent = os.sendfile(out.fileno(), self._source_fd, copied, size - copied)
                if sent == 0:
                    break
                copied += sent

    def close(self) -> None:
        """After the writer's connection is closed (closing this drops its lock)."""
        if self._source_fd is not None:
            os.close(self._source_fd)
            self._source_fd = None

    def status(self) -> dict[str, object]:
        return {
            "path": str(self.target),
            "published_at": self.published_at,
            "copy_seconds": round(self.last_copy_seconds, 3),
            "published": self.published,
        }


def adopt_legacy_file(live: Path, snapshot: Path) -> None:
    """Before issue 7 the exporter wrote ``DATA_DIR/imptrack.duckdb`` itself; on the
    first start after the upgrade that file becomes the exporter's own."""
    if live.exists() or not snapshot.exists():
        return
    live.parent.mkdir(parents=True, exist_ok=True)
    os.replace(snapshot, live)
    wal = snapshot.with_name(snapshot.name + ".wal")
    if wal.exists():
        os.replace(wal, live.with_name(live.name + ".wal"))
    log.info("moved the reporting database %s to %s (the exporter's own file)", snapshot, live)
