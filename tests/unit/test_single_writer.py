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


def test_the_copy_is_the_checkpoints_while_the_writer_goes_on(tmp_path: Path) -> None:
    """Between the checkpoint and the rename the writer inserts (large inserts are
    written into the file before they commit), deletes and updates: the snapshot
    holds the checkpoint's rows, whole, and automatic checkpoints run again after."""
    live = tmp_path / "exporter" / "imptrack.duckdb"
    con = db.open_writer(live)
    publisher = SnapshotPublisher(live, tmp_path / "imptrack.duckdb", 1.0)
    try:
        con.execute("CREATE TABLE t (id BIGINT, s VARCHAR)")
        con.execute("INSERT INTO t SELECT i, 'row ' || i FROM range(300000) r(i)")
        copy = publisher.begin(con)
        held = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        assert held is not None and held[0].endswith("GiB")
        con.execute("INSERT INTO t SELECT i, 'later ' || i FROM range(300000, 700000) r(i)")
        con.execute("DELETE FROM t WHERE id % 3 = 0")
        con.execute("UPDATE t SET s = 'changed' WHERE id % 5 = 0")
        publisher.copy(copy)
        con.execute("INSERT INTO t SELECT i, 'after' FROM range(700000, 800000) r(i)")
        publisher.finish(con, copy)
        after = con.execute("SELECT current_setting('checkpoint_threshold')").fetchone()
        assert after == ("16.0 MiB",)
        snapshot = db.open_reader(tmp_path / "imptrack.duckdb")
        try:
            assert snapshot.execute(
                "SELECT count(*), sum(id), count(*) FILTER (s LIKE 'row %') FROM t"
            ).fetchone() == (300000, sum(range(300000)), 300000)
        finally:
            snapshot.close()
    finally:
        con.close()
        publisher.close()
