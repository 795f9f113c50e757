"""The exporter's DuckDB writes: rows, rollup and offsets in one transaction."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pytest

from app.exceptions import ReportError
from app.ids import IdGenerator
from reports import db, sql, store
from reports.columns import deliveries_batch, impressions_batch, rejections_batch
from tests.ids import TEST_SEAL


def impression_factory(count: int, at: datetime, offer_id: int = 1) -> list[dict[str, Any]]:
    gen = IdGenerator(TEST_SEAL)
    ms = int(at.timestamp() * 1000)
    return [
        {"aimp_id": gen.new_id(now_ms=ms), "offer_id": offer_id, "pid": 2, "sub1": f"s{n}"}
        for n in range(count)
    ]


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return db.open_writer(tmp_path / "t.duckdb")


def test_a_replayed_batch_is_stored_once(con: duckdb.DuckDBPyConnection) -> None:
    """Events delivered twice (across batches and inside one) become one row each."""
    events = impression_factory(100, datetime(2026, 11, 1, 10, 15, tzinfo=UTC))
    first = store.Batch({"impressions": impressions_batch(events[:60])}, {("t", 0): 60})
    again = store.Batch({"impressions": impressions_batch(events + events[:5])}, {("t", 0): 105})
    assert store.write_batch(con, "c1", first)["impressions"] == 60
    assert store.write_batch(con, "c1", again)["impressions"] == 40
    assert con.execute("SELECT count(*), count(DISTINCT aimp_id) FROM impressions").fetchall() == [
        (100, 100)
    ]
    assert con.execute("SELECT sum(impressions) FROM impressions_hourly").fetchall() == [(100,)]
    assert store.load_offsets(con, "c1") == {("t", 0): 105}


def test_rollup_is_per_utc_hour(con: duckdb.DuckDBPyConnection) -> None:
    """Impressions in two hours land in two hourly rows, keyed by the UTC hour start."""
    events = impression_factory(3, datetime(2026, 11, 1, 10, 59, tzinfo=UTC)) + impression_factory(
        2, datetime(2026, 11, 1, 11, 0, tzinfo=UTC)
    )
    store.write_batch(
        con, "c1", store.Batch({"impressions": impressions_batch(events)}, {("t", 0): 5})
    )
    rows = con.execute("SELECT hour, impressions FROM impressions_hourly ORDER BY hour").fetchall()
    assert [(h.astimezone(UTC).hour, n) for h, n in rows] == [(10, 3), (11, 2)]


def test_a_failed_batch_leaves_no_rows_and_no_offsets(con: duckdb.DuckDBPyConnection) -> None:
    """If the transaction fails, neither the rows nor the offsets move."""
    events = impression_factory(10, datetime(2026, 11, 1, tzinfo=UTC))
    store.write_batch(
        con, "c1", store.Batch({"impressions": impressions_batch(events[:5])}, {("t", 0): 5})
    )
    con.execute("DROP TABLE export_offsets")  # make the offsets statement fail
    with pytest.raises(duckdb.Error):
        store.write_batch(
            con, "c1", store.Batch({"impressions": impressions_batch(events[5:])}, {("t", 0): 10})
        )
    assert con.execute("SELECT count(*) FROM impressions").fetchall() == [(5,)]
    assert con.execute("SELECT sum(impressions) FROM impressions_hourly").fetchall() == [(5,)]


def test_offsets_are_kept_per_cluster(con: duckdb.DuckDBPyConnection) -> None:
    """Offsets of one broker cluster are not applied to another."""
    store.write_batch(
        con, "old", store.Batch({"impressions": impressions_batch([])}, {("t", 0): 500})
    )
    assert store.load_offsets(con, "new") == {}
    assert store.load_offsets(con, "old") == {("t", 0): 500}


def test_migrations_run_once_and_refuse_a_newer_schema(tmp_path: Path) -> None:
    """Re-opening keeps the schema; a file from a newer imptrack is refused with a clear error."""
    path = tmp_path / "m.duckdb"
    db.open_writer(path).close()
    con = db.open_writer(path)
    versions = con.execute("SELECT version FROM schema_migrations ORDER BY 1").fetchall()
    assert versions == [(v,) for v, _, _ in db.migrations()]
    con.execute("INSERT INTO schema_migrations (version, name) VALUES (999, 'future.sql')")
    con.close()
    with pytest.raises(ReportError, match="upgrade imptrack"):
        db.open_writer(path)


def rejection_factory(events: list[dict[str, Any]], reason: str) -> list[dict[str, Any]]:
    return [{**e, "reason": reason} for e in events]


def _only(**counts: int) -> dict[str, int]:
    """Counts per exported kind: these, and 0 for every other kind."""
    return dict.fromkeys(store.KINDS, 0) | counts


def test_rejections_roll_up_per_reason_and_the_first_verdict_wins(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Rejections are stored once per aimp_id and counted per reason; an aimp_id
    already stored with the other verdict is not stored again."""
    events = impression_factory(6, datetime(2026, 11, 1, 9, tzinfo=UTC))
    tracked, rejected = events[:3], events[3:]
    first = store.Batch(
        {
            "impressions": impressions_batch(tracked),
            "rejections": rejections_batch(rejection_factory(rejected, "offer_not_active")),
        },
        {("t", 0): 6},
    )
    assert store.write_batch(con, "c1", first) == _only(impressions=3, rejections=3)
    # A replay judged differently: the stored verdicts stand.
    replay = store.Batch(
        {
            "impressions": impressions_batch(rejected),
            "rejections": rejections_batch(rejection_factory(tracked, "offer_deleted")),
        },
        {("t", 0): 12},
    )
    assert store.write_batch(con, "c1", replay) == _only(impressions=0, rejections=0)
    assert con.execute(
        "SELECT reason, sum(rejections) FROM rejections_hourly GROUP BY ALL"
    ).fetchall() == [("offer_not_active", 3)]
    assert store.count_rows(con) == _only(impressions=3, rejections=3)


def test_a_replay_without_repeats_inside_the_batch_is_still_filtered(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """A batch whose IDs are all different can still hold stored rows (a replay after a
    crash): only the new ones are written, and counted once in the rollup."""
    events = impression_factory(10, datetime(2026, 11, 1, 8, tzinfo=UTC))
    store.write_batch(
        con, "c1", store.Batch({"impressions": impressions_batch(events[:4])}, {("t", 0): 4})
    )
    replay = store.Batch({"impressions": impressions_batch(events[2:])}, {("t", 0): 12})
    assert store.write_batch(con, "c1", replay) == _only(impressions=6)
    assert con.execute("SELECT count(*), count(DISTINCT aimp_id) FROM impressions").fetchall() == [
        (10, 10)
    ]
    assert con.execute("SELECT sum(impressions) FROM stats_hourly").fetchall() == [(10,)]


def test_new_rows_are_the_batch_itself_unless_something_repeats(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """The common batch (all new, each key once) is written from its own Arrow table,
    not copied; repeats by the whole key are filtered, a shared first column is not."""
    at = datetime(2026, 11, 1, 8, tzinfo=UTC)
    (impression,) = impression_factory(1, at)
    attempts = [
        {
            **impression,
            "at_ms": int(at.timestamp() * 1000) + n,
            "advertiser_id": 1,
            "destination": "main",
            "url": "http://adv.example/imp",
            "attempt": n,
            "outcome": "retrying" if n < 3 else "delivered",
            "latency_ms": 1.5,
        }
        for n in (1, 2, 3)
    ]
    rows = deliveries_batch(attempts)
    stored, *_ = sql.statements("export_deliveries")
    min_id = {"min_id": impression["aimp_id"]}
    cur = con.cursor()
    cur.register("batch_deliveries", rows)
    assert store._new_rows(cur, "deliveries", rows, stored, min_id) is rows
    again = deliveries_batch([*attempts, attempts[1]])
    cur.register("batch_deliveries", again)
    assert store._new_rows(cur, "deliveries", again, stored, min_id).num_rows == 3
    assert store.write_batch(con, "c1", store.Batch({"deliveries": again}, {("d", 0): 4})) == (
        _only(deliveries=3)
    )
    assert store.write_batch(con, "c1", store.Batch({"deliveries": rows}, {("d", 0): 7})) == (
        _only()
    )


def test_the_exporters_duckdb_memory_is_bounded(tmp_path: Path) -> None:
    """EXPORTER_MEMORY_MB reaches DuckDB: its default (80% of the machine) let the
    exporter's memory grow with the database."""
    default = db.open_writer(tmp_path / "default.duckdb")
    bounded = db.open_writer(tmp_path / "bounded.duckdb", memory_mb=512)
    try:
        (limit,) = bounded.execute("SELECT current_setting('memory_limit')").fetchone() or ("",)
        (unbounded,) = default.execute("SELECT current_setting('memory_limit')").fetchone() or ("",)
        assert limit == "488.2 MiB"  # 512 MB, as DuckDB shows it
        assert limit != unbounded
    finally:
        default.close()
        bounded.close()
