"""Writing one exported batch: rows, rollups and consumer offsets in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from reports import sql

KIND_IDS = {
    "impressions": "aimp_id",
    "rejections": "aimp_id",
    "deliveries": "aimp_id",
    "clicks": "clickid",
    "click_rejections": "clickid",
    "conversions": "conversion_id",
    "server_postbacks": "postback_id",
}
"""Exported kinds, in the order a batch stores them, and the time-ordered ID each is
deduplicated by. Each has a ``batch_KIND`` view, an ``export_KIND.sql`` whose first
statement makes ``fresh_KIND``, and a table."""
KINDS = tuple(KIND_IDS)


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
            # IDs are time-ordered: stored rows older than the batch's oldest cannot match.
            min_id = min(rows.column(KIND_IDS[kind]).to_pylist())
            create, *writes = sql.statements(f"export_{kind}")
            # Kinds updated in place (conversions) cannot bound their lookup by ID.
            cur.execute(create, {"min_id": min_id} if "$min_id" in create else None)
            fresh[kind] = cur.execute(f"SELECT count(*) FROM fresh_{kind}").fetchone()[0]  # type: ignore[index]
            for statement in writes:
                cur.execute(statement)
        cur.execute(sql.load("save_offsets"), {"cluster_id": cluster_id})
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    finally:
        cur.unregister("batch_offsets")
        for kind in batch.rows:
            cur.unregister(f"batch_{kind}")
        cur.close()
    return fresh


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
