"""Opening the reporting database and bringing its schema up to date."""

from __future__ import annotations

import fcntl
import os
import re
from importlib import resources
from pathlib import Path

import duckdb

from app.exceptions import ReportError, ReportUnavailable
from reports.views import create_views

_MIGRATION_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def migrations() -> list[tuple[int, str, str]]:
    """Every shipped migration as (version, file name, SQL), in version order."""
    folder = resources.files("reports").joinpath("sql", "migrations")
    found = []
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text("utf-8")))
    return sorted(found)


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply missing migrations, each in its own transaction; return the schema version."""
    con.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    applied = {row[0] for row in con.execute("SELECT version FROM schema_migrations").fetchall()}
    known = migrations()
    newest_known = known[-1][0] if known else 0
    if applied and max(applied) > newest_known:
        raise ReportError(
            f"the database has schema version {max(applied)} but this imptrack knows only up "
            f"to {newest_known}; upgrade imptrack before opening it"
        )
    for version, name, sql in known:
        if version in applied:
            continue
        con.execute("BEGIN")
        try:
            con.execute(sql)
            con.execute(
                "INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name]
            )
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise
    return max(applied | {v for v, _, _ in known}, default=0)


def hold_writer_lock(path: Path) -> int:
    """Take the single-writer lock of the DuckDB file at ``path`` for this process's
    life (the returned descriptor holds it), or say who has it.

    One exporter per DuckDB file: the rows and the offsets it resumes from are written
    together, and a second writer would export everything again. DuckDB's own lock
    is a POSIX record lock, which a process loses when it closes any descriptor of
    the file, so the exporter also holds this ``flock`` on a file beside it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(path.name + ".writer-lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ReportError(
            f"another exporter already writes {path} (pid {holder}). Run one exporter per "
            "DuckDB file: stop the other first, or give this one its own IMPTRACK_HOME."
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def open_writer(path: Path, memory_mb: int | None = None) -> duckdb.DuckDBPyConnection:
    """The exporter's read-write connection, schema migrated; with ``memory_mb``,
    DuckDB keeps at most that much (buffer cache included; larger queries spill to
    disk) instead of its default, 80% of the machine's memory, which let the
    exporter's memory grow with the database for as long as the soak ran."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path))
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise ReportError(
            f"cannot open {path} for writing: another process has it open "
            f"({str(exc).splitlines()[0]}). Analysts read the snapshot beside it instead."
        ) from None
    con.execute("SET TimeZone = 'UTC'")
    if memory_mb is not None:
        con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
    migrate(con)
    create_views(con)
    return con


def open_reader(path: Path) -> duckdb.DuckDBPyConnection:
    """A read-only connection; raises ``duckdb.IOException`` while a writer holds the file."""
    if not path.exists():
        raise ReportUnavailable(
            f"no reporting database at {path}; start imptrack (`make up`) first"
        )
    con = duckdb.connect(str(path), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    row = con.execute("SELECT max(version) FROM schema_migrations").fetchone()
    newest_known = migrations()[-1][0]
    if row is None or row[0] is None or row[0] < newest_known:
        con.close()
        raise ReportError(
            f"the reporting database at {path} has schema version {row[0] if row else None}; "
            f"this imptrack reads version {newest_known}. Start the exporter once "
            "(`imptrack up`) to bring it up to date."
        )
    return con
