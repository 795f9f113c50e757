"""The Daily slice and its date ranges."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pytest

from app.exceptions import ReportError
from app.ids import IdGenerator
from reports import db, store
from reports.columns import clicks_batch, impressions_batch
from reports.formatting import render
from reports.slices import DateRange, SliceResult, date_range, run_slice
from tests.ids import TEST_SEAL
from tests.unit.test_store import impression_factory


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = db.open_writer(tmp_path / "s.duckdb")
    events = (
        impression_factory(4, datetime(2026, 3, 1, 22, 10, tzinfo=UTC))
        + impression_factory(3, datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
        + impression_factory(2, datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    )
    store.write_batch(
        con, "c", store.Batch({"impressions": impressions_batch(events)}, {("t", 0): 9})
    )
    return con


def daily(con: duckdb.DuckDBPyConnection, period: DateRange) -> SliceResult:
    return run_slice(con, "daily", period)


def _days(result: SliceResult) -> list[tuple[object, object]]:
    """(date, impressions) of each row of the Daily slice."""
    return [(row["date"], row["impressions"]) for row in result.as_dicts()]


def _first4(result: SliceResult) -> list[tuple[object, ...]]:
    """(date, impressions, clicks, ctr_pct) of each row of the Daily slice."""
    keys = ("date", "impressions", "clicks", "ctr_pct")
    return [tuple(row[k] for k in keys) for row in result.as_dicts()]


def test_daily_in_utc(con: duckdb.DuckDBPyConnection) -> None:
    """Impressions are counted on their UTC day."""
    result = daily(con, date_range("2026-03-01", "2026-03-02", "UTC"))
    assert _days(result) == [(date(2026, 3, 1), 7), (date(2026, 3, 2), 2)]


def test_an_event_at_2330_utc_is_next_day_in_utc_plus_1(con: duckdb.DuckDBPyConnection) -> None:
    """In Europe/Berlin (UTC+1 in March) 23:30 UTC is already the next day."""
    result = daily(con, date_range("2026-03-01", "2026-03-02", "Europe/Berlin"))
    assert _days(result) == [(date(2026, 3, 1), 4), (date(2026, 3, 2), 5)]


def test_half_hour_timezones_are_exact(con: duckdb.DuckDBPyConnection) -> None:
    """Asia/Kolkata (UTC+5:30) is answered from the rows, not the hourly rollup: 18:45 UTC
    is 00:15 next day there, though its UTC hour bucket starts at 23:30 the day before."""
    extra = impression_factory(1, datetime(2026, 3, 1, 18, 45, tzinfo=UTC))
    store.write_batch(
        con, "c", store.Batch({"impressions": impressions_batch(extra)}, {("t", 0): 10})
    )
    period = date_range("2026-03-01", "2026-03-03", "Asia/Kolkata")
    assert not period.whole_hour_offsets
    assert _days(daily(con, period)) == [(date(2026, 3, 2), 10)]


def test_days_outside_the_range_are_left_out(con: duckdb.DuckDBPyConnection) -> None:
    """--from/--to bound the days in the chosen timezone, both inclusive."""
    assert _days(daily(con, date_range("2026-03-02", "2026-03-02", "UTC"))) == [
        (date(2026, 3, 2), 2)
    ]


def test_default_range_is_the_last_seven_days() -> None:
    period = date_range(None, None, "UTC", today=date(2026, 11, 23))
    assert (period.first, period.last) == (date(2026, 11, 17), date(2026, 11, 23))


@pytest.mark.parametrize(
    ("first", "last", "tz", "message"),
    [
        ("2026-13-01", None, "UTC", "--from '2026-13-01' is not a date"),
        (None, "yesterday", "UTC", "--to 'yesterday' is not a date"),
        ("2026-03-05", "2026-03-01", "UTC", "--from 2026-03-05 is after --to 2026-03-01"),
        (None, None, "Mars/Olympus", "is not an IANA timezone"),
        # Found by schemathesis through the stats API, each a 500 before.
        (None, None, "x" * 300, "is not an IANA timezone"),
        (None, None, "Europe", "is not an IANA timezone"),
        ("9999-12-31", "9999-12-31", "UTC", "reaches past the years a date can have"),
        ("0001-01-01", "0001-01-01", "Asia/Tokyo", "reaches past the years"),
        (None, "0001-01-03", "UTC", "week before --to.* reaches past the years"),
        ("0001-01-02", "2026-03-01", "UTC", "is 739675 days; a slice covers at most 36525"),
    ],
)
def test_bad_ranges_say_what_is_wrong(
    first: str | None, last: str | None, tz: str, message: str
) -> None:
    with pytest.raises(ReportError, match=message):
        date_range(first, last, tz)


def test_formats(con: duckdb.DuckDBPyConnection) -> None:
    """The same slice as a terminal table, CSV and JSON."""
    result = daily(con, date_range("2026-03-01", "2026-03-02", "UTC"))
    counts = "impressions,clicks,ctr_pct,conversions,approved,pending,declined,hold"
    rates = "click_conversions,cr_pct,view_through_conversions,view_through_per_1000"
    money = "revenue,payout,profit,ecpm"
    assert render(result, "csv") == (
        f"date,currency,{counts},{rates},{money}\n"
        "2026-03-01,USD,7,0,0.0,0,0,0,0,0,0,,0,0.0,0.0000,0.0000,0.0000,0.0000\n"
        "2026-03-02,USD,2,0,0.0,0,0,0,0,0,0,,0,0.0,0.0000,0.0000,0.0000,0.0000"
    )
    assert '"impressions": 7' in render(result, "json")
    table = render(result, "table").splitlines()
    assert table[0].split()[:4] == ["date", "currency", "impressions", "clicks"]
    assert table[2].split()[:4] == ["2026-03-01", "USD", "7", "0"]


def _clicks(count: int, at: datetime) -> list[dict[str, object]]:
    gen = IdGenerator(TEST_SEAL)
    ms = int(at.timestamp() * 1000)
    return [
        {"clickid": gen.new_id(now_ms=ms), "offer_id": 1, "pid": 2, "advertiser_id": 3}
        | {"link": "none"}
        for _ in range(count)
    ]


def test_daily_counts_clicks_once_and_their_ctr(con: duckdb.DuckDBPyConnection) -> None:
    """Clicks are counted on their day beside the impressions, replays once; CTR is
    clicks per 100 impressions (empty on a day without impressions)."""
    clicks = _clicks(2, datetime(2026, 3, 1, 23, 30, tzinfo=UTC)) + _clicks(
        1, datetime(2026, 3, 3, 9, 0, tzinfo=UTC)
    )
    batch = store.Batch({"clicks": clicks_batch(clicks + clicks[:1])}, {("c", 0): 4})
    assert store.write_batch(con, "c", batch)["clicks"] == 3
    assert store.write_batch(con, "c", batch)["clicks"] == 0
    utc = _first4(daily(con, date_range("2026-03-01", "2026-03-03", "UTC")))
    assert utc == [
        (date(2026, 3, 1), 7, 2, 28.57),
        (date(2026, 3, 2), 2, 0, 0.0),
        (date(2026, 3, 3), 0, 1, None),
    ]
    # 23:30 UTC is the next day in Berlin (from the rollups) and in Kolkata, +05:30
    # (from the rows): there every event of 1 March UTC is on 2 March.
    berlin = _first4(daily(con, date_range("2026-03-01", "2026-03-03", "Europe/Berlin")))
    assert [row[2] for row in berlin] == [0, 2, 1]
    kolkata = _first4(daily(con, date_range("2026-03-01", "2026-03-03", "Asia/Kolkata")))
    assert kolkata == [
        (date(2026, 3, 2), 9, 2, 22.22),
        (date(2026, 3, 3), 0, 1, None),
    ]
