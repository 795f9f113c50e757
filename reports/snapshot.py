"""The analysts' copy of the reporting database.

DuckDB lets one process hold a file for writing and no other process open it at
all meanwhile, not even read-only. The exporter therefore writes its own file
(``DATA_DIR/exporter/imptrack.duckdb``) and every few seconds publishes a snapshot
of it as ``DATA_DIR/imptrack.duckdb``: a checkpoint (so the file alone holds every
committed batch), a copy beside the target, then an atomic rename over it. A
reader that has the old snapshot open keeps reading it (the rename does not touch
an open file); the next one opens the new. Readers never lock out the exporter,
and the snapshot is always a whole, consistent database, at most a few seconds old.

The copy runs beside the writer, not between its batches: after the checkpoint,
DuckDB changes the file's committed state only at the next checkpoint. Commits go
to the write-ahead log, and a large insert writes its row groups into blocks the
checkpointed state does not use (free ones, or new ones past the end), so the bytes
the copy reads stay those of the checkpoint. Automatic checkpoints are held off
while it runs (``checkpoint_threshold``) and the writer's close waits for it. A
copy of a file being written (inserts, some of them written optimistically,
deletes, updates, upserts) opened as the checkpointed state in every one of 27
rounds on DuckDB 2.0.0 (tests/unit/test_single_writer.py holds one). Before, the
export loop neither fetched nor wrote while a copy ran (up to 1.3 s in a soak).

Copies cost time in proportion to the file; the exporter publishes no more often
than 20 times what the last copy took, so a large database cannot make the export
spend most of its time copying.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

log = logging.getLogger("imptrack.snapshot")

COPY_SHARE = 20  # publish at most once per this many copy durations
HELD_OFF = "1TB"
"""``checkpoint_threshold`` while a copy runs: no write-ahead log grows that large."""


@dataclass
class SnapshotCopy:
    """A snapshot being copied: from the checkpoint its bytes were taken at."""

    started: float
    partial: Path
    size: int
    threshold: str


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
        """Checkpoint ``con`` (the writer of ``source``), copy and publish, all at once
        (on the writer's thread: at stop, and in tests)."""
        copy = self.begin(con)
        try:
            self.copy(copy)
        except BaseException:
            self.finish(con, copy, copied=False)
            raise
        self.finish(con, copy)

    def begin(self, con: duckdb.DuckDBPyConnection) -> SnapshotCopy:
        """Checkpoint ``con`` and hold off automatic checkpoints: the file now holds
        what :meth:`copy` takes. On the writer's thread, between batches."""
        started = time.monotonic()
        con.execute("CHECKPOINT")
        row = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        threshold = str(row[0]) if row is not None else "16MB"
        con.execute(f"SET checkpoint_threshold = '{HELD_OFF}'")
        if self._source_fd is None:
            self._source_fd = os.open(self.source, os.O_RDONLY)
        partial = self.target.with_name(f".{self.target.name}.{os.getpid()}.partial")
        return SnapshotCopy(started, partial, os.fstat(self._source_fd).st_size, threshold)

    def copy(self, copy: SnapshotCopy) -> None:
        """Copy the checkpointed file; on any thread, while the writer goes on."""
        self._copy_source(copy.partial, copy.size)

    def finish(
        self, con: duckdb.DuckDBPyConnection, copy: SnapshotCopy, copied: bool = True
    ) -> None:
        """Let checkpoints run again, and publish the copy if it was made. On the
        writer's thread."""
        con.execute(f"SET checkpoint_threshold = '{copy.threshold}'")
        if not copied:
            copy.partial.unlink(missing_ok=True)
            return
        os.replace(copy.partial, self.target)
        self.last_copy_seconds = time.monotonic() - copy.started
        self._last_monotonic = time.monotonic()
        self.published_at = time.time()
        self.published += 1
        log.debug("published %s in %.3f s", self.target, self.last_copy_seconds)

    def _copy_source(self, partial: Path, size: int) -> None:
        # DuckDB guards its file with a POSIX record lock, and POSIX drops every lock a
        # process holds on a file when *any* of its descriptors of that file closes: a
        # plain copy (open, read, close) released the exporter's lock after the first
        # snapshot, and another process could then open the live file for writing.
        # So the source is read through one descriptor, kept open until close().
        assert self._source_fd is not None  # opened by begin()
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
