"""One exporter per DuckDB file, and the snapshot copy that must not unlock it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.exceptions import ReportError
from reports import db
from reports.snapshot import SnapshotPublisher

OPEN_FOR_WRITING = "import duckdb, sys; duckdb.connect(sys.argv[1]); print('opened')"


def test_a_second_writer_is_refused_with_the_first_ones_pid(tmp_path: Path) -> None:
    """The lock names the process that holds it, and frees on release."""
    path = tmp_path / "exporter" / "imptrack.duckdb"
    held = db.hold_writer_lock(path)
    try:
        with pytest.raises(
            ReportError, match=rf"another exporter already writes .*pid {os.getpid()}"
        ):
            db.hold_writer_lock(path)
    finally:
        os.close(held)
    os.close(db.hold_writer_lock(path))


def test_publishing_the_snapshot_keeps_duckdbs_own_lock(tmp_path: Path) -> None:
    """A plain file copy closed a descriptor of the live file and so dropped DuckDB's
    POSIX lock: another process could then open it for writing. Not any more."""
    live = tmp_path / "exporter" / "imptrack.duckdb"
    con = db.open_writer(live)
    publisher = SnapshotPublisher(live, tmp_path / "imptrack.duckdb", 1.0)
    try:
        publisher.publish(con)
        publisher.publish(con)
        other = subprocess.run(
            [sys.executable, "-c", OPEN_FOR_WRITING, str(live)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert other.returncode != 0 and "Could not set lock" in other.stderr, other.stdout
        snapshot = db.open_reader(tmp_path / "imptrack.duckdb")
        snapshot.close()
    finally:
        con.close()
        publisher.close()
