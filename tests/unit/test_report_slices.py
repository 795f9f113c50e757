"""Every aggregated slice against hand-computed numbers, from a known event set
written through the exporter's own store (reports.store.write_batch)."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.parquet as pq
import pytest

from app.exceptions import ReportError
from app.ids import IdGenerator
from reports import db, store
from reports.columns import (
    click_rejections_batch,
    clicks_batch,
    conversions_batch,
    impressions_batch,
    rejections_batch,
)
from reports.formatting import as_arrow_stream, as_parquet, from_arrow_stream
from reports.slice_request import SliceRequest
from reports.slices import SliceOptions, SliceResult, date_range, run_slice
from reports.snapshot import SnapshotPublisher


def _new_id(at_ms: int) -> str:
    # A generator per ID: one generator never goes back in time, and these events
    # are written out of time order on purpose.
    return IdGenerator().new_id(now_ms=at_ms)


MORNING = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
LATE = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 2 March in Berlin (UTC+1)
MARCH_1 = date_range("2026-03-01", "2026-03-01", "UTC")
BOTH_DAYS = date_range("2026-03-01", "2026-03-02", "UTC")


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _impressions(n: int, at: datetime, offer: int, pid: int, adv: int, **extra: Any) -> list[Any]:
    return [
        {"aimp_id": _new_id(_ms(at)), "offer_id": offer, "pid": pid}
        | {"advertiser_id": adv, **extra}
        for _ in range(n)
    ]


def _conversion(cid: str, revision: int, status: int) -> dict[str, Any]:
    return {
        "conversion_id": cid,
        "revision": revision,
        "postback_id": f"{cid}-{revision}",
        "offer_id": 1,
        "pid": 100,
        "advertiser_id": 10,
        "attribution": "click",
        "goal": "sale",
        "status": status,
        "revenue": "10.00",
        "payout": "7.00",
        "currency": "USD",
        "event_ms": _ms(MORNING),
        "created_ms": _ms(MORNING) + 600_000,
        "updated_ms": _ms(MORNING) + 600_000 + revision,
        "sub1": "a",
    }


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    """Offer 1 (advertiser 10, USD, CPM 2/1 per mille): 4 impressions and 2 clicks of
    affiliate 100 at 10:00 with sub1 'a', a conversion pending then approved (CPA
    10/7) and one declined. Offer 2 (advertiser 20, EUR, CPM 5/3): 2 impressions of
    affiliate 200 with sub1 'b' at 23:30 UTC."""
    con = db.open_writer(tmp_path / "r.duckdb")
    usd = {"revenue": "0.002", "payout": "0.001", "currency": "USD", "sub1": "a"}
    eur = {"revenue": "0.005", "payout": "0.003", "currency": "EUR", "sub1": "b"}
    impressions = _impressions(4, MORNING, 1, 100, 10, **usd) + _impressions(
        2, LATE, 2, 200, 20, **eur
    )
    clicks = [
        {"clickid": _new_id(_ms(MORNING) + 300_000), "offer_id": 1, "pid": 100}
        | {"advertiser_id": 10, "link": "none", "currency": "USD", "sub1": "a"}
        for _ in range(2)
    ]
    approved_later, declined = _new_id(_ms(MORNING)), _new_id(_ms(MORNING))
    batches = [
        {"impressions": impressions_batch(impressions), "clicks": clicks_batch(clicks)},
        {"conversions": conversions_batch([_conversion(approved_later, 1, 2)])},
        {"conversions": conversions_batch([_conversion(declined, 1, 3)])},
        # The status update, and a replay of the first revision that must change nothing.
        {"conversions": conversions_batch([_conversion(approved_later, 2, 1)])},
        {"conversions": conversions_batch([_conversion(approved_later, 1, 2)])},
    ]
    for offset, rows in enumerate(batches):
        store.write_batch(con, "c", store.Batch(rows, {("t", 0): offset + 1}))
    return con


USD_OFFER_1 = {
    "currency": "USD",
    "impressions": 4,
    "clicks": 2,
    "ctr_pct": 50.0,
    "conversions": 2,
    "approved": 1,
    "pending": 0,
    "declined": 1,
    "hold": 0,
    "cr_pct": 100.0,
    "revenue": Decimal("10.0080"),  # 4 x 0.002 + 10
    "payout": Decimal("7.0040"),  # 4 x 0.001 + 7
    "profit": Decimal("3.0040"),
    "ecpm": Decimal("2502.0000"),  # 1000 x 10.008 / 4
}
EUR_OFFER_2 = {
    "currency": "EUR",
    "impressions": 2,
    "clicks": 0,
    "ctr_pct": 0.0,
    "conversions": 0,
    "approved": 0,
    "pending": 0,
    "declined": 0,
    "hold": 0,
    "cr_pct": None,
    "revenue": Decimal("0.0100"),
    "payout": Decimal("0.0060"),
    "profit": Decimal("0.0040"),
    "ecpm": Decimal("5.0000"),
}


def _rows(result: SliceResult) -> list[dict[str, Any]]:
    return result.as_dicts()


def test_every_aggregated_slice_matches_the_hand_computed_numbers(
    con: duckdb.DuckDBPyConnection,
) -> None:
    d1 = date(2026, 3, 1)
    assert _rows(run_slice(con, "daily", MARCH_1)) == [
        {"date": d1, **EUR_OFFER_2},
        {"date": d1, **USD_OFFER_1},
    ]
    assert _rows(run_slice(con, "advertisers", MARCH_1)) == [
        {"advertiser_id": 10, **USD_OFFER_1},
        {"advertiser_id": 20, **EUR_OFFER_2},
    ]
    assert _rows(run_slice(con, "offers", MARCH_1)) == [
        {"offer_id": 1, "advertiser_id": 10, **USD_OFFER_1},
        {"offer_id": 2, "advertiser_id": 20, **EUR_OFFER_2},
    ]
    assert _rows(run_slice(con, "affiliates", MARCH_1)) == [
        {"pid": 100, **USD_OFFER_1},
        {"pid": 200, **EUR_OFFER_2},
    ]
    custom = run_slice(con, "custom", MARCH_1, SliceOptions(group_by=("date", "offer", "sub1")))
    assert _rows(custom) == [
        {"date": d1, "offer_id": 1, "sub1": "a", **USD_OFFER_1},
        {"date": d1, "offer_id": 2, "sub1": "b", **EUR_OFFER_2},
    ]
    # By goal: impressions and clicks have none, the conversions "sale".
    by_goal = _rows(run_slice(con, "custom", MARCH_1, SliceOptions(group_by=("goal",))))
    assert [(r["goal"], r["currency"], r["conversions"]) for r in by_goal] == [
        ("sale", "USD", 2),
        (None, "EUR", 0),
        (None, "USD", 0),
    ]


def test_slices_agree_with_the_raw_rows_and_each_other(con: duckdb.DuckDBPyConnection) -> None:
    totals = {}
    for name in ("daily", "advertisers", "offers", "affiliates", "custom"):
        rows = _rows(run_slice(con, name, BOTH_DAYS))
        totals[name] = (
            sum(r["impressions"] for r in rows),
            sum(r["clicks"] for r in rows),
            sum(r["conversions"] for r in rows),
            sum(r["revenue"] for r in rows),
        )
    raw = con.execute(
        "SELECT (SELECT count(*) FROM impressions), (SELECT count(*) FROM clicks),"
        " (SELECT count(*) FROM conversions),"
        " (SELECT sum(revenue) FROM impressions)"
        " + (SELECT sum(revenue) FROM conversions WHERE status = 1)"
    ).fetchone()
    assert set(totals.values()) == {
        (raw[0], raw[1], raw[2], Decimal(raw[3]).quantize(Decimal("0.0001")))
    }  # type: ignore[index]


def test_filters_narrow_every_slice(con: duckdb.DuckDBPyConnection) -> None:
    only_2 = _rows(run_slice(con, "daily", MARCH_1, SliceOptions(offers=(2,))))
    assert [r["impressions"] for r in only_2] == [2]
    assert (
        _rows(run_slice(con, "offers", MARCH_1, SliceOptions(affiliates=(100,))))[0]["offer_id"]
        == 1
    )
    assert (
        _rows(run_slice(con, "daily", MARCH_1, SliceOptions(advertisers=(20,))))[0]["currency"]
        == "EUR"
    )
    assert run_slice(con, "daily", MARCH_1, SliceOptions(offers=(99,))).rows == []
    declined = _rows(run_slice(con, "offers", MARCH_1, SliceOptions(statuses=("declined",))))
    assert [(r["offer_id"], r["conversions"], r["cr_pct"]) for r in declined] == [
        (1, 1, 50.0),
        (2, 0, None),
    ]
    listed = _rows(run_slice(con, "conversions", MARCH_1, SliceOptions(statuses=("approved",))))
    assert [(r["status"], r["revision"], r["aimp_id"]) for r in listed] == [("approved", 2, None)]


def test_sort_and_limit(con: duckdb.DuckDBPyConnection) -> None:
    by_revenue = run_slice(
        con, "offers", MARCH_1, SliceOptions(sort=(("revenue", True),), limit=1)
    ).as_dicts()
    assert [r["offer_id"] for r in by_revenue] == [1]
    ascending = run_slice(con, "offers", MARCH_1, SliceOptions(sort=(("impressions", False),)))
    assert [r["offer_id"] for r in ascending.as_dicts()] == [2, 1]
    with pytest.raises(ReportError, match="cannot sort by 'nope'"):
        run_slice(con, "offers", MARCH_1, SliceOptions(sort=(("nope", False),)))


def test_timezone_boundary_moves_the_late_impressions_to_the_next_day(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """23:30 UTC is 00:30 on 2 March in Berlin (rollup path) and 05:00 in Kolkata
    (rows path): offer 2's impressions change day, offer 1's do not."""
    for tz in ("Europe/Berlin", "Asia/Kolkata"):
        period = date_range("2026-03-01", "2026-03-02", tz)
        rows = _rows(run_slice(con, "daily", period))
        assert [(r["date"], r["currency"], r["impressions"]) for r in rows] == [
            (date(2026, 3, 1), "USD", 4),
            (date(2026, 3, 2), "EUR", 2),
        ], tz
    hours = _rows(
        run_slice(
            con,
            "custom",
            date_range("2026-03-02", "2026-03-02", "Asia/Kolkata"),
            SliceOptions(group_by=("hour",)),
        )
    )
    assert [(str(r["hour"]), r["impressions"]) for r in hours] == [("2026-03-02 05:00:00", 2)]


def test_the_views_are_the_slices_in_utc(con: duckdb.DuckDBPyConnection) -> None:
    view = con.execute("SELECT * FROM daily").fetchall()
    assert view == run_slice(con, "daily", MARCH_1).rows
    offers = con.execute("SELECT offer_id, impressions FROM offers ORDER BY 1").fetchall()
    assert offers == [(1, 4), (2, 2)]
    base = con.execute("SELECT sum(impressions), sum(revenue) FROM custom_base").fetchone()
    assert base == (6, Decimal("10.01800000"))
    for name in ("hourly", "advertisers", "affiliates", "offers_daily", "affiliates_daily"):
        assert con.execute(f"SELECT sum(impressions) FROM {name}").fetchone() == (6,), name
    assert con.execute("SELECT count(*) FROM rejection_reasons").fetchone() == (0,)


def test_parquet_and_arrow_keep_the_types(con: duckdb.DuckDBPyConnection) -> None:
    result = run_slice(con, "daily", MARCH_1)
    table = pq.read_table(io.BytesIO(as_parquet(result)))
    assert str(table.schema.field("date").type) == "date32[day]"
    assert str(table.schema.field("revenue").type) == "decimal128(18, 4)"
    assert from_arrow_stream(as_arrow_stream(result)).rows == result.rows


def test_the_snapshot_opens_while_the_writer_holds_its_file(
    con: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    snapshot = tmp_path / "imptrack.duckdb"
    publisher = SnapshotPublisher(tmp_path / "r.duckdb", snapshot, every_seconds=10)
    assert publisher.due()
    publisher.publish(con)
    assert not publisher.due()
    reader = duckdb.connect(str(snapshot), read_only=True)
    try:
        assert reader.execute("SELECT sum(impressions) FROM daily").fetchone() == (6,)
        # More exported meanwhile: the open snapshot is unchanged, the next one has it.
        store.write_batch(
            con,
            "c",
            store.Batch(
                {"impressions": impressions_batch(_impressions(3, MORNING, 1, 100, 10))},
                {("t", 0): 99},
            ),
        )
        publisher.publish(con)
        assert reader.execute("SELECT sum(impressions) FROM daily").fetchone() == (6,)
    finally:
        reader.close()
    again = duckdb.connect(str(snapshot))
    try:
        assert again.execute("SELECT sum(impressions) FROM daily").fetchone() == (9,)
    finally:
        again.close()


@pytest.mark.parametrize(
    ("name", "values", "message"),
    [
        ("weekly", {}, "unknown slice 'weekly'"),
        ("daily", {"group_by": "date"}, "--group-by is for the custom slice only"),
        ("custom", {"group_by": "date,date"}, "names a dimension twice"),
        ("custom", {"group_by": "colour"}, "cannot group by 'colour'"),
        ("rejections", {"advertiser": "3"}, "cannot be narrowed by advertiser"),
        ("postbacks", {"status": "approved"}, "cannot be narrowed by status"),
        ("daily", {"errors": "1"}, "--errors is for the postbacks slice only"),
        ("daily", {"limit": "0"}, "--limit must be between"),
        ("daily", {"limit": "ten"}, "not a whole number"),
        ("daily", {"offer": "7;drop"}, "comma-separated list of ids"),
        ("daily", {"status": "won"}, "unknown conversion status 'won'"),
        ("daily", {"sort": "revenue:sideways"}, "not asc or desc"),
        ("daily", {"sort_by": "revenue"}, "unknown parameter 'sort_by'"),
    ],
)
def test_bad_requests_say_what_is_wrong(name: str, values: dict[str, str], message: str) -> None:
    with pytest.raises(ReportError, match=message):
        SliceRequest.parse(name, values)


def test_a_request_survives_the_trip_through_its_query() -> None:
    values = {
        "from": "2026-03-01",
        "to": "2026-03-02",
        "tz": "Europe/Berlin",
        "offer": "1,2",
        "status": "approved,hold",
        "group_by": "date,sub3",
        "sort": "revenue:desc",
        "limit": "10",
    }
    request = SliceRequest.parse("custom", values)
    assert SliceRequest.parse("custom", request.query()) == request


def test_rejections_by_reason_from_the_rollups_and_from_the_rows(tmp_path: Path) -> None:
    """The same counts whether the hourly rollups (Berlin) or the rows (Kolkata)
    answer; 23:30 UTC moves to the next day in both; offer filter narrows."""
    con = db.open_writer(tmp_path / "rej.duckdb")
    rejected = [
        {"aimp_id": _new_id(_ms(MORNING)), "offer_id": 1, "pid": 100, "reason": "offer_paused"},
        {"aimp_id": _new_id(_ms(LATE)), "offer_id": 2, "pid": 200, "reason": "offer_paused"},
        {"aimp_id": _new_id(_ms(LATE)), "offer_id": 2, "pid": 200, "reason": "geo_blocked"},
    ]
    clicks = [
        {"clickid": _new_id(_ms(MORNING)), "offer_id": 1, "pid": 100, "reason": "geo_blocked"}
    ]
    batch = {
        "rejections": rejections_batch(rejected),
        "click_rejections": click_rejections_batch(clicks),
    }
    store.write_batch(con, "c", store.Batch(batch, {("t", 0): 1}))
    for tz in ("UTC", "Europe/Berlin", "Asia/Kolkata"):
        march_2 = date_range("2026-03-02", "2026-03-02", tz)
        late = [
            (r["reason"], r["impressions"], r["clicks"])
            for r in _rows(run_slice(con, "rejections", march_2))
        ]
        assert late == ([] if tz == "UTC" else [("geo_blocked", 1, 0), ("offer_paused", 1, 0)]), tz
        both = date_range("2026-03-01", "2026-03-02", tz)
        rows = _rows(run_slice(con, "rejections", both, SliceOptions(offers=(1,))))
        assert [(r["reason"], r["rejections"], r["share_pct"]) for r in rows] == [
            ("geo_blocked", 1, 50.0),
            ("offer_paused", 1, 50.0),
        ], tz
