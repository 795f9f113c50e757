"""Benchmark: the reporting database, read and written, against bare DuckDB.

1. Custom slice speed: ``run_slice("custom", group_by=date, offer, sub1)`` over 30 days
   of a ``stats_hourly`` rollup standing for 10 and 100 million impressions, in UTC
   and in Europe/Berlin, against a bare hand-written ``GROUP BY`` of the same rollup
   in the same file. Target: the slice within 1.0 s at 100 million impressions.
2. Exporter throughput: envelopes of recorded impressions, as the worker writes them
   on impressions-recorded, read into Arrow columns by the exporter's own
   ``reports.exporter.read_envelopes`` and stored with ``store.write_batch`` into a
   fresh reporting database, against ``INSERT INTO bare SELECT * FROM batch`` of the
   same rows, as Arrow tables built beforehand, into a bare table of the same columns
   in a fresh file; each ends with a CHECKPOINT.
   Batches of the exporter's default size (EXPORT_BATCH_ROWS), the same for both.
   Alternating, 3 rounds, medians (QUICK: 1 round of 100,000 rows, slices 3 times).
   Targets: 500,000 rows/s and 0.8 x bare (issue 23).

Both run in this process, on the same machine in the same run.

    python -m bench.reports_speed          # QUICK=1 for a smoke run
"""

from __future__ import annotations

import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from aiokafka import ConsumerRecord

from app.events import kinds
from app.ids import IdGenerator, IdSeal
from app.ops.stack import Stack
from app.settings import Settings
from bench.common import QUICK, figure, machine, write_result
from reports import db, store
from reports.exporter import read_envelopes
from reports.slices import SliceOptions, date_range, run_slice

# Part 1: the slice.
SIZES = (10_000_000,) if QUICK else (10_000_000, 100_000_000)
TARGET_SIZE = 100_000_000
TARGET_SLICE_S = 1.0
FIRST_DAY = date(2026, 10, 1)  # 30 days, over the end of summer time (October 25)
DAYS, OFFERS, SUB1S = 30, 50, 5
IMPRESSIONS_PER_AFFILIATE = 5_000_000  # 2 affiliates at 10M, 20 at 100M: ~28 per row
GROUP_BY = ("date", "offer", "sub1")
TIMEZONES = ("UTC", "Europe/Berlin")
RUNS = 3 if QUICK else 5
BARE_SLICE = """
    SELECT CAST(hour AS DATE) AS date, offer_id, sub1, currency,
        sum(impressions), sum(clicks), sum(conversions), sum(approved), sum(pending),
        sum(declined), sum(hold), sum(cpm_revenue) + sum(cpa_revenue),
        sum(cpm_payout) + sum(cpa_payout)
    FROM stats_hourly
    GROUP BY ALL
"""

# Part 2: the exporter.
EVENTS = 100_000 if QUICK else 2_000_000
BATCH_ROWS = Settings.from_env({}).export_batch_rows  # the exporter's default
ENVELOPE_ROWS = 200  # the "N in the hundreds"; BATCH_ROWS is a multiple
ROUNDS = 1 if QUICK else 3
TARGET_ROWS_S = 500_000
TARGET_RATIO = 0.8
RECORDED = kinds.RECORDED_IMPRESSIONS
EVENTS_START = datetime(2026, 11, 24, tzinfo=UTC)  # the first envelope's millisecond
USER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.0 Safari/605.1.15",
)


def fill_rollup(con: duckdb.DuckDBPyConnection, impressions: int) -> int:
    """Append rollup rows standing for exactly ``impressions`` impressions (one row
    per UTC hour, offer, affiliate and sub1, in hour order as the exporter appends);
    the number of rows."""
    affiliates = max(1, impressions // IMPRESSIONS_PER_AFFILIATE)
    per_hour = OFFERS * affiliates * SUB1S
    rows = DAYS * 24 * per_hour  # even: rows 2k and 2k+1 vary by +d and -d
    base, extra = divmod(impressions, rows)
    assert base >= 2 and rows % 2 == 0
    con.execute(f"""
        INSERT INTO stats_hourly BY NAME
        WITH r AS (
            SELECT
                i // {per_hour} AS h,
                (i // {affiliates * SUB1S}) % {OFFERS} AS o,
                (i // {SUB1S}) % {affiliates} AS a,
                i % {SUB1S} AS s,
                (hash(i) % 1000003)::BIGINT AS x,
                {base} + (i < {extra})::BIGINT
                    + (1 - 2 * (i % 2)) * (hash(i // 2) % {base // 2 + 1})::BIGINT AS n
            FROM range({rows}) AS t(i)
        )
        SELECT
            TIMESTAMPTZ '{FIRST_DAY} 00:00:00+00' + to_hours(h) AS hour,
            (o + 1)::INTEGER AS offer_id,
            (a + 1)::INTEGER AS pid,
            (o % 10 + 1)::INTEGER AS advertiser_id,
            CASE WHEN o % 10 = 9 THEN 'EUR' ELSE 'USD' END AS currency,
            'placement-' || s AS sub1,
            n AS impressions,
            n * (x % 50) // 1000 AS clicks,
            (x % 7 = 0)::BIGINT AS conversions,
            (x % 14 = 0)::BIGINT AS approved,
            (x % 7 = 0 AND x % 14 <> 0)::BIGINT AS pending,
            n * 0.0025 AS cpm_revenue,
            n * 0.0015 AS cpm_payout,
            (x % 14 = 0)::BIGINT * 2.5 AS cpa_revenue,
            (x % 14 = 0)::BIGINT * 1.5 AS cpa_payout
        FROM r
    """)
    con.execute("CHECKPOINT")
    return rows


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure_slice(folder: Path, impressions: int) -> dict[str, Any]:
    path = folder / f"slice-{impressions}.duckdb"
    con = db.open_writer(path)
    try:
        fill_s = _seconds(lambda: fill_rollup(con, impressions))
        rows, represented = con.execute(
            "SELECT count(*), sum(impressions) FROM stats_hourly"
        ).fetchone() or (0, 0)
        last = (FIRST_DAY + timedelta(days=DAYS - 1)).isoformat()
        options = SliceOptions(group_by=GROUP_BY)
        queries: dict[str, Callable[[], Any]] = {
            tz: partial(
                run_slice, con, "custom", date_range(FIRST_DAY.isoformat(), last, tz), options
            )
            for tz in TIMEZONES
        }
        queries["bare"] = lambda: con.execute(BARE_SLICE).fetchall()
        results = {name: query() for name, query in queries.items()}  # warm-up
        runs: dict[str, list[float]] = {name: [] for name in queries}
        for _ in range(RUNS):
            for name, query in queries.items():
                runs[name].append(round(_seconds(query), 4))
    finally:
        con.close()
    path.unlink()
    utc = results["UTC"]
    checks = {
        "utc_impressions": sum(row[utc.columns.index("impressions")] for row in utc.rows),
        "utc_rows": len(utc.rows),
        "berlin_rows": len(results["Europe/Berlin"].rows),
        "bare_rows": len(results["bare"]),
    }
    seconds = {name: statistics.median(r) for name, r in runs.items()}
    return {
        "impressions": int(represented),
        "rollup_rows": int(rows),
        "fill_s": round(fill_s, 2),
        "slice_utc_s": round(seconds["UTC"], 4),
        "slice_berlin_s": round(seconds["Europe/Berlin"], 4),
        "bare_s": round(seconds["bare"], 4),
        "ratio_utc": round(seconds["UTC"] / seconds["bare"], 2),
        "ratio_berlin": round(seconds["Europe/Berlin"] / seconds["bare"], 2),
        "checks": checks,
        "ok": checks["utc_impressions"] == impressions == represented
        and checks["utc_rows"] == checks["bare_rows"] > 0
        and checks["berlin_rows"] > 0,
        "runs": runs,
    }


def impression_batches(count: int, batch_rows: int) -> list[list[ConsumerRecord]]:
    """``count`` recorded impressions as the exporter's batches, each the records of
    envelopes of ENVELOPE_ROWS impressions as the worker writes them, with the IDs an
    edge gives an envelope (one millisecond each, one impression a millisecond on
    average): 50 offers, 20 affiliates, 5 sub1 and 4 sub2 values."""
    ids = IdGenerator(IdSeal(os.urandom(32)))  # IDs nobody checks here
    rnd = random.Random(7)
    start_ms = int(EVENTS_START.timestamp() * 1000)
    fmt = RECORDED.enveloped.current
    batches = []
    for first in range(0, count, batch_rows):
        envelopes: list[ConsumerRecord] = []
        last = min(first + batch_rows, count)
        for start in range(first, last, ENVELOPE_ROWS):
            envelope_ids = ids.open_envelope(0, start_ms + start)
            rows = []
            for n in range(start, min(start + ENVELOPE_ROWS, last)):
                offer = 1 + rnd.randrange(OFFERS)
                rows.append(
                    {
                        "aimp_id": envelope_ids.id(n - start),
                        "offer_id": offer,
                        "pid": 1 + rnd.randrange(20),
                        "imp_id": f"imp-{n}",
                        "sub1": f"placement-{rnd.randrange(5)}",
                        "sub2": f"creative-{rnd.randrange(4)}",
                        "ua": USER_AGENTS[rnd.randrange(len(USER_AGENTS))],
                        "ip": f"203.0.{(n >> 8) & 255}.{n & 255}",
                        "revenue": "0.0025",
                        "payout": "0.0015",
                        "currency": "USD",
                        "advertiser_id": offer % 10 + 1,
                    }
                )
            value = fmt.encode_rows(rows)
            offset = len(envelopes)
            envelopes.append(
                ConsumerRecord(
                    RECORDED.topic, 0, offset, 0, 0, None, value, None, 0, len(value), []
                )
            )
        batches.append(envelopes)
    return batches


def exported_rows(envelopes: list[ConsumerRecord]) -> pa.Table:
    """What the exporter makes of a batch's envelopes (one fetch, as if)."""
    rows, unreadable = read_envelopes(RECORDED.enveloped, "impressions", envelopes)
    assert not unreadable, unreadable[:1]
    return rows


def _remove(path: Path) -> None:
    for leftover in (path, path.with_name(path.name + ".wal")):
        leftover.unlink(missing_ok=True)


def export_round(path: Path, batches: list[list[ConsumerRecord]]) -> dict[str, Any]:
    con = db.open_writer(path)
    try:
        fresh = 0
        offset = 0
        start = time.perf_counter()
        for envelopes in batches:
            table = exported_rows(envelopes)
            offset += table.num_rows
            batch = store.Batch({"impressions": table}, {("impressions", 0): offset})
            fresh += store.write_batch(con, "bench", batch)["impressions"]
        con.execute("CHECKPOINT")  # see bare_round
        elapsed = time.perf_counter() - start
        stored = store.count_rows(con)["impressions"]
    finally:
        con.close()
    _remove(path)
    return {
        "seconds": round(elapsed, 3),
        "rows_s": round(offset / elapsed),
        "ok": fresh == stored == offset,
    }


def bare_round(path: Path, tables: list[pa.Table]) -> dict[str, Any]:
    con = duckdb.connect(str(path))
    try:
        con.register("first_table", tables[0])
        con.execute("CREATE TABLE bare AS SELECT * FROM first_table LIMIT 0")
        con.unregister("first_table")
        rows = 0
        start = time.perf_counter()
        for table in tables:
            con.register("arrow_table", table)
            con.execute("INSERT INTO bare SELECT * FROM arrow_table")
            con.unregister("arrow_table")
            rows += table.num_rows
        # Both sides end with their rows in the database file, not partly in its WAL:
        # DuckDB checkpoints when the WAL passes 16 MiB, so without this the side that
        # happens to stop just short of a checkpoint would be paid for work it deferred.
        con.execute("CHECKPOINT")
        elapsed = time.perf_counter() - start
        stored = con.execute("SELECT count(*) FROM bare").fetchone()
    finally:
        con.close()
    _remove(path)
    return {"seconds": round(elapsed, 3), "rows_s": round(rows / elapsed), "ok": stored == (rows,)}


def measure_export(folder: Path) -> dict[str, Any]:
    build_start = time.perf_counter()
    batches = impression_batches(EVENTS, BATCH_ROWS)
    build_s = time.perf_counter() - build_start
    tables = [exported_rows(envelopes) for envelopes in batches]
    runs: dict[str, list[dict[str, Any]]] = {"exporter": [], "bare": []}
    for n in range(ROUNDS):
        runs["exporter"].append(export_round(folder / f"exporter-{n}.duckdb", batches))
        runs["bare"].append(bare_round(folder / f"bare-{n}.duckdb", tables))
    exporter = statistics.median(r["rows_s"] for r in runs["exporter"])
    bare = statistics.median(r["rows_s"] for r in runs["bare"])
    ratio = round(exporter / bare, 3)
    return {
        "events": EVENTS,
        "batch_rows": BATCH_ROWS,
        "envelope_rows": ENVELOPE_ROWS,
        "rounds": ROUNDS,
        "build_envelopes_s": round(build_s, 2),
        "exporter_rows_s": round(exporter),
        "bare_rows_s": round(bare),
        "ratio": ratio,
        "target_rows_s": TARGET_ROWS_S,
        "target_ratio": TARGET_RATIO,
        "target_met": exporter >= TARGET_ROWS_S and ratio >= TARGET_RATIO,
        "ok": all(r["ok"] for name in runs for r in runs[name]),
        "runs": runs,
    }


def run(stack: Stack | None = None) -> dict[str, Any]:
    """Both parts; needs no running system (``stack`` is accepted for the driver)."""
    with tempfile.TemporaryDirectory(prefix="imptrack-bench-") as home:
        sizes = [measure_slice(Path(home), size) for size in SIZES]
        export = measure_export(Path(home))
    at_target = next((s for s in sizes if s["impressions"] == TARGET_SIZE), None)
    slice_part: dict[str, Any] = {
        "slice": "custom",
        "group_by": list(GROUP_BY),
        "days": DAYS,
        "runs": RUNS,
        "target_s": TARGET_SLICE_S,
        # Not measured in a quick run (no 100 million rollup).
        "target_met": None
        if at_target is None
        else max(at_target["slice_utc_s"], at_target["slice_berlin_s"]) <= TARGET_SLICE_S,
        "sizes": sizes,
    }
    figures = [
        figure(
            "exporter rows/s into DuckDB",
            export["exporter_rows_s"],
            "rows/s",
            baseline=export["bare_rows_s"],
            target=f">= {TARGET_ROWS_S:,} rows/s and >= {TARGET_RATIO} x bare insert",
            met=None if QUICK else export["target_met"],
        )
    ]
    for size in sizes:
        slowest = max(size["slice_utc_s"], size["slice_berlin_s"])
        figures.append(
            figure(
                f"custom slice s at {size['impressions'] // 1_000_000}M impressions",
                slowest,
                "s",
                baseline=size["bare_s"],
                target=f"<= {TARGET_SLICE_S:g} s at 100M",
                met=slowest <= TARGET_SLICE_S if size["impressions"] == TARGET_SIZE else None,
            )
        )
    ok = all(s["ok"] for s in sizes) and export["ok"]
    return {
        "benchmark": "reports_speed",
        "figures": figures,
        "details": {"slice": slice_part, "export": export, "ok": ok},
    }


def main() -> int:
    result = run()
    path = write_result("reports_speed", result | {"quick": QUICK, "machine": machine()})
    sizes = result["details"]["slice"]["sizes"]
    export = result["details"]["export"]
    print(f"custom slice by {', '.join(GROUP_BY)} over {DAYS} days, median of {RUNS} (seconds)")
    print(
        f"{'impressions':>12} {'rollup rows':>12} {'UTC':>7} {'Berlin':>7} {'bare':>7}"
        f" {'UTC/bare':>9} {'Berlin/bare':>12}"
    )
    for s in sizes:
        print(
            f"{s['impressions']:>12,} {s['rollup_rows']:>12,} {s['slice_utc_s']:>7.3f}"
            f" {s['slice_berlin_s']:>7.3f} {s['bare_s']:>7.3f} {s['ratio_utc']:>9}"
            f" {s['ratio_berlin']:>12}"
        )
    met = result["details"]["slice"]["target_met"]
    verdict = "not measured (quick run)" if met is None else ("met" if met else "MISSED")
    print(f"target: slice <= {TARGET_SLICE_S:g} s at {TARGET_SIZE:,} impressions: {verdict}")
    print()
    print(
        f"exporter: {EVENTS:,} impressions in envelopes of {ENVELOPE_ROWS}, batches of"
        f" {BATCH_ROWS:,}, {ROUNDS} rounds alternating (median)"
    )
    print(f"{'':9} {'rows/s':>10}")
    for name in ("exporter", "bare"):
        print(f"{name:9} {export[f'{name}_rows_s']:>10,}")
    print(
        f"exporter/bare: {export['ratio']} x; target >= {TARGET_ROWS_S:,} rows/s and"
        f" >= {TARGET_RATIO} x bare: {'met' if export['target_met'] else 'MISSED'}"
    )
    print(f"written: {path}")
    ok = result["details"]["ok"]
    if not ok:
        print("a check failed: see 'checks' and 'ok' in the results", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
