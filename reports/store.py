"""Writing one exported batch: rows, rollups and consumer offsets in one transaction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from app.events import kinds
from reports import sql

KIND_KEYS: dict[str, tuple[str, ...]] = {
    export.table: export.dedup_key for _, export in kinds.EXPORTS
}
"""Exported kinds (app.events.kinds), in the order a batch stores them, and the key
each is deduplicated by; the first key column is a time-ordered ID. Each kind has a
``batch_KIND`` view of the batch's rows, a table, and an ``export_KIND.sql``: for
kinds stored once per key, its first statement selects the stored keys a batch may
repeat; the rest write ``fresh_KIND``, the batch's new rows."""
KINDS = tuple(KIND_KEYS)

UPDATED_IN_PLACE = frozenset(export.table for _, export in kinds.EXPORTS if export.updated_in_place)
"""Kinds whose export SQL makes ``fresh_KIND`` itself: a conversion's newer revision
replaces the stored row instead of being dropped as already stored."""


@dataclass(frozen=True)
class Batch:
    # kind -> rows of this batch (see reports.columns.BATCH_BUILDERS)
    rows: dict[str, pa.Table]
    # (topic, partition) -> the next offset to read, i.e. last exported + 1.
    next_offsets: dict[tuple[str, int], int]


def load_offsets(con: duckdb.DuckDBPyConnection, cluster_id: str) -> dict[tuple[str, int], int]:
    rows = con.execute(
        'SELECT topic, "partition", next_offset FROM export_offsets WHERE cluster_id = ?',
        [cluster_id],
    ).fetchall()
    return {(topic, partition): offset for topic, partition, offset in rows}


def write_batch(con: duckdb.DuckDBPyConnection, cluster_id: str, batch: Batch) -> dict[str, int]:
    """Store a batch exactly once; return how many rows of each kind were new.

    Either everything (rows, rollups, offsets) commits or nothing does, so a crash at
    any moment leaves offsets that match the rows, and the replay after it starts
    exactly where the stored rows end.
    """
    cur = con.cursor()
    offsets = pa.table(
        {
            "topic": [topic for topic, _ in batch.next_offsets],
            "partition": pa.array([p for _, p in batch.next_offsets], pa.int32()),
            "next_offset": pa.array(list(batch.next_offsets.values()), pa.int64()),
        }
    )
    cur.register("batch_offsets", offsets)
    for kind, rows in batch.rows.items():
        cur.register(f"batch_{kind}", rows)
    fresh = dict.fromkeys(KINDS, 0)
    cur.execute("BEGIN")
    try:
        for kind in KINDS:
            rows = batch.rows.get(kind)
            if rows is None or not rows.num_rows:
                continue
            first, *writes = sql.statements(f"export_{kind}")
            # IDs are time-ordered: stored rows older than the batch's oldest cannot match.
            min_id = {"min_id": pc.min(rows.column(KIND_KEYS[kind][0])).as_py()}
            if kind in UPDATED_IN_PLACE:
                cur.execute(first)
                (fresh[kind],) = cur.execute(f"SELECT count(*) FROM fresh_{kind}").fetchall()[0]
            else:
                new_rows = _new_rows(cur, kind, rows, first, min_id)
                cur.register(f"fresh_{kind}", new_rows)
                fresh[kind] = new_rows.num_rows
            for statement in writes:
                cur.execute(statement)
        cur.execute(sql.load("save_offsets"), {"cluster_id": cluster_id})
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    finally:
        for name in (
            "batch_offsets",
            *(f"{p}_{k}" for k in batch.rows for p in ("batch", "fresh")),
        ):
            cur.unregister(name)
        cur.close()
    return fresh


def _new_rows(
    cur: duckdb.DuckDBPyConnection,
    kind: str,
    rows: pa.Table,
    stored: str,
    params: dict[str, Any],
) -> pa.Table:
    """The rows of ``batch_KIND`` not yet stored, each key once.

    Usually that is the whole batch, which is then written straight from its Arrow
    table; copying it first would cost as much as storing it. Only a batch that repeats
    a key or replays stored rows (after a crash) is filtered, in SQL.
    """
    keys = KIND_KEYS[kind]
    stored = stored.rstrip().removesuffix(";")
    joined = ", ".join(keys)
    repeats = rows.num_rows - rows.select(keys).group_by(list(keys)).aggregate([]).num_rows
    if not repeats:
        found = cur.execute(
            f"SELECT count(*) FROM batch_{kind} SEMI JOIN ({stored}) AS stored USING ({joined})",
            params,
        ).fetchall()
        if found == [(0,)]:
            return rows
    return cur.sql(
        f"""
        SELECT * FROM (
            SELECT * FROM batch_{kind} QUALIFY row_number() OVER (PARTITION BY {joined}) = 1
        ) AS b
        ANTI JOIN ({stored}) AS stored USING ({joined})
        """,
        params=params,
    ).to_arrow_table()


def count_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Stored rows of each exported kind."""
    cur = con.cursor()
    try:
        return {
            kind: int(cur.execute(f"SELECT count(*) FROM {kind}").fetchone()[0])  # type: ignore[index]
            for kind in KINDS
        }
    finally:
        cur.close()
