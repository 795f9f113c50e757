"""Writing one exported batch: rows, rollups and consumer offsets in one transaction."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pyarrow as pa

from reports import sql


@dataclass(frozen=True)
class Batch:
    impressions: pa.Table
    # (topic, partition) -> the next offset to read, i.e. last exported + 1.
    next_offsets: dict[tuple[str, int], int]


def load_offsets(con: duckdb.DuckDBPyConnection, cluster_id: str) -> dict[tuple[str, int], int]:
    rows = con.execute(
        'SELECT topic, "partition", next_offset FROM export_offsets WHERE cluster_id = ?',
        [cluster_id],
    ).fetchall()
    return {(topic, partition): offset for topic, partition, offset in rows}


def write_batch(con: duckdb.DuckDBPyConnection, cluster_id: str, batch: Batch) -> int:
    """Store a batch exactly once; return how many impressions were new.

    Either everything (rows, rollup, offsets) commits or nothing does, so a crash at
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
    cur.register("batch_impressions", batch.impressions)
    cur.register("batch_offsets", offsets)
    cur.execute("BEGIN")
    try:
        fresh = 0
        if batch.impressions.num_rows:
            min_aimp_id = min(batch.impressions.column("aimp_id").to_pylist())
            create, insert, rollup = sql.statements("export_impressions")
            cur.execute(create, {"min_aimp_id": min_aimp_id})
            fresh = cur.execute("SELECT count(*) FROM fresh_impressions").fetchone()[0]  # type: ignore[index]
            cur.execute(insert)
            cur.execute(rollup)
        cur.execute(sql.load("save_offsets"), {"cluster_id": cluster_id})
        cur.execute("COMMIT")
    except BaseException:
        cur.execute("ROLLBACK")
        raise
    finally:
        cur.unregister("batch_impressions")
        cur.unregister("batch_offsets")
        cur.close()
    return int(fresh)


def count_impressions(con: duckdb.DuckDBPyConnection) -> int:
    row = con.cursor().execute("SELECT count(*) FROM impressions").fetchone()
    return int(row[0]) if row else 0
