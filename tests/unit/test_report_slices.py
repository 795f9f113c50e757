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
    server_postbacks_batch,
)
from reports.formatting import as_arrow_stream, as_parquet, from_arrow_stream
from reports.slice_request import SliceRequest
from reports.slices import METRICS, SliceOptions, SliceResult, date_range, run_slice
from reports.snapshot import SnapshotPublisher
from tests.ids import TEST_SEAL


def _new_id(at_ms: int) -> str:
    # A generator per ID: one generator never goes back in time, and these events
    # are written out of time order on purpose.
    return IdGenerator(TEST_SEAL).new_id(now_ms=at_ms)


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


def _conversion(cid: str, revision: int, status: int, attribution: str = "click") -> dict[str, Any]:
    return {
        "conversion_id": cid,
        "revision": revision,
        "postback_id": f"{cid}-{revision}",
        "offer_id": 1,
        "pid": 100,
        "advertiser_id": 10,
        "attribution": attribution,
        "aimp_id": cid if attribution == "view_through" else None,
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
    affiliate 100 at 10:00 with sub1 'a'; after a click, a conversion pending then
    approved (CPA 10/7) and one declined; view-through (after an impression), one
    approved and one pending. Offer 2 (advertiser 20, EUR, CPM 5/3): 2 impressions of
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
    seen_approved, seen_pending = _new_id(_ms(MORNING)), _new_id(_ms(MORNING))
    batches = [
        {"impressions": impressions_batch(impressions), "clicks": clicks_batch(clicks)},
        {
            "conversions": conversions_batch(
                [
                    _conversion(seen_approved, 1, 1, "view_through"),
                    _conversion(seen_pending, 1, 2, "view_through"),
                ]
            )
        },
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
    "conversions": 4,
    "approved": 2,
    "pending": 1,
    "declined": 1,
    "hold": 0,
    "click_conversions": 2,
    "cr_pct": 100.0,  # 2 click-attributed / 2 clicks; counting all 4 gave 200 %
    "view_through_conversions": 2,
    "view_through_per_1000": 500.0,  # 1000 x 2 / 4 impressions
    "revenue": Decimal("20.0080"),  # 4 x 0.002 + 2 x 10
    "payout": Decimal("14.0040"),  # 4 x 0.001 + 2 x 7
    "profit": Decimal("6.0040"),
    "ecpm": Decimal("5002.0000"),  # 1000 x 20.008 / 4
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
    "click_conversions": 0,
    "cr_pct": None,
    "view_through_conversions": 0,
    "view_through_per_1000": 0.0,
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
        ("sale", "USD", 4),
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
    # The click-attributed one (updated, revision 2) and the view-through one (its aimp_id).
    assert sorted((r["status"], r["revision"], r["aimp_id"] is None) for r in listed) == [
        ("approved", 1, False),
        ("approved", 2, True),
    ]


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
    assert base == (6, Decimal("20.01800000"))
    by_attribution = con.execute(
        "SELECT attribution, sum(conversions) FROM custom_base GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert by_attribution == [("click", 2), ("view_through", 2), (None, 0)]
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
        ("rejections", {"status": "approved"}, "cannot be narrowed by status"),
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
    answer; 23:30 UTC moves to the next day in both; the offer and advertiser
    filters narrow (a rejection of an unknown offer has no advertiser)."""
    con = db.open_writer(tmp_path / "rej.duckdb")
    adv_10, adv_20 = {"advertiser_id": 10}, {"advertiser_id": 20}
    rejected = [
        {"aimp_id": _new_id(_ms(MORNING)), "offer_id": 1, "pid": 100, "reason": "offer_paused"}
        | adv_10,
        {"aimp_id": _new_id(_ms(LATE)), "offer_id": 2, "pid": 200, "reason": "offer_paused"}
        | adv_20,
        {"aimp_id": _new_id(_ms(LATE)), "offer_id": 2, "pid": 200, "reason": "geo_blocked"}
        | adv_20,
        {"aimp_id": _new_id(_ms(LATE)), "offer_id": 9, "pid": 200, "reason": "offer_unknown"},
    ]
    clicks = [
        {"clickid": _new_id(_ms(MORNING)), "offer_id": 1, "pid": 100, "reason": "geo_blocked"}
        | adv_10
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
        assert late == (
            []
            if tz == "UTC"
            else [("geo_blocked", 1, 0), ("offer_paused", 1, 0), ("offer_unknown", 1, 0)]
        ), tz
        both = date_range("2026-03-01", "2026-03-02", tz)
        for narrowed in (SliceOptions(offers=(1,)), SliceOptions(advertisers=(10,))):
            rows = _rows(run_slice(con, "rejections", both, narrowed))
            assert [(r["reason"], r["rejections"], r["share_pct"]) for r in rows] == [
                ("geo_blocked", 1, 50.0),
                ("offer_paused", 1, 50.0),
            ], (tz, narrowed)
        rows = _rows(run_slice(con, "rejections", both, SliceOptions(advertisers=(20,))))
        assert sorted((r["reason"], r["impressions"]) for r in rows) == [
            ("geo_blocked", 1),
            ("offer_paused", 1),
        ], tz


def _outcome(at: datetime, offer: int, kind: str | None, error: str | None) -> dict[str, Any]:
    return {
        "postback_id": _new_id(_ms(at)),
        "method": "GET",
        "params": {"clickid": "c"},
        "status": 1 if kind is None else 2,
        "outcome": "created" if kind is None else "refused",
        "error": error,
        "error_kind": kind,
        "offer_id": offer,
        "pid": 100,
        "advertiser_id": 10 if offer == 1 else 20,
    }


def test_postback_errors_count_the_refusals_by_kind_with_the_newest_words(
    tmp_path: Path,
) -> None:
    """Refusals only (an accepted postback is not an error), per kind, the newest
    refusal's words and time in the asked timezone; a refusal stored before kinds
    existed counts as 'unknown'; the filters narrow."""
    con = db.open_writer(tmp_path / "pb.duckdb")
    later = MORNING.replace(hour=11)
    outcomes = [
        _outcome(MORNING, 1, None, None),
        _outcome(MORNING, 1, "unknown_id", "unknown clickid abc"),
        _outcome(later, 2, "unknown_id", "unknown clickid xyz"),
        _outcome(MORNING, 2, "offer_not_active", "offer 2 is paused"),
        _outcome(MORNING, 2, None, "no clickid or aimp_id") | {"status": 2},
    ]
    batch = {"server_postbacks": server_postbacks_batch(outcomes)}
    store.write_batch(con, "c", store.Batch(batch, {("t", 0): 1}))
    rows = _rows(
        run_slice(con, "postback-errors", date_range("2026-03-01", "2026-03-01", "Europe/Berlin"))
    )
    assert [
        (
            r["error_kind"],
            r["refusals"],
            r["share_pct"],
            r["offers"],
            r["last_received"],
            r["last_error"],
        )
        for r in rows
    ] == [
        ("unknown_id", 2, 50.0, 2, "2026-03-01 12:00:00", "unknown clickid xyz"),
        ("offer_not_active", 1, 25.0, 1, "2026-03-01 11:00:00", "offer 2 is paused"),
        ("unknown", 1, 25.0, 1, "2026-03-01 11:00:00", "no clickid or aimp_id"),
    ]
    narrowed = run_slice(con, "postback-errors", MARCH_1, SliceOptions(advertisers=(10,)))
    assert [(r["error_kind"], r["refusals"]) for r in _rows(narrowed)] == [("unknown_id", 1)]
    assert (
        _rows(run_slice(con, "postback-errors", date_range("2026-03-02", "2026-03-02", "UTC")))
        == []
    )


# Each metric of docs/REPORTING.md ("Metrics"), computed from the raw rows.
FORMULAS: dict[str, Any] = {
    "impressions": lambda b: b["impressions"],
    "clicks": lambda b: b["clicks"],
    "ctr_pct": lambda b: round(100 * b["clicks"] / b["impressions"], 2),
    "conversions": lambda b: b["click"] + b["view_through"],
    "approved": lambda b: b["status 1"],
    "pending": lambda b: b["status 2"],
    "declined": lambda b: b["status 3"],
    "hold": lambda b: b["status 5"],
    "click_conversions": lambda b: b["click"],
    "cr_pct": lambda b: round(100 * b["click"] / b["clicks"], 2),
    "view_through_conversions": lambda b: b["view_through"],
    "view_through_per_1000": lambda b: round(1000 * b["view_through"] / b["impressions"], 2),
    "revenue": lambda b: b["cpm_revenue"] + b["cpa_revenue"],
    "payout": lambda b: b["cpm_payout"] + b["cpa_payout"],
    "profit": lambda b: b["cpm_revenue"] + b["cpa_revenue"] - b["cpm_payout"] - b["cpa_payout"],
    "ecpm": lambda b: (1000 * (b["cpm_revenue"] + b["cpa_revenue"]) / b["impressions"]).quantize(
        Decimal("0.0001")
    ),
}


def _documented_metrics() -> list[str]:
    text = (Path(__file__).parents[2] / "docs" / "REPORTING.md").read_text()
    table = text.split("## Metrics", 1)[1].split("\n\n| metric | formula |", 1)[1]
    rows = table.split("\n\n", 1)[0].splitlines()[1:]
    return [row.split("`")[1] for row in rows if row.startswith("| `")]


def _base(con: duckdb.DuckDBPyConnection, offer: int) -> dict[str, Any]:
    """The raw counts and money the formulas take, for one offer, from the rows."""
    one = con.execute(
        "SELECT (SELECT count(*) FROM impressions WHERE offer_id = $o),"
        " (SELECT count(*) FROM clicks WHERE offer_id = $o),"
        " (SELECT sum(revenue) FROM impressions WHERE offer_id = $o),"
        " (SELECT sum(payout) FROM impressions WHERE offer_id = $o),"
        " (SELECT coalesce(sum(revenue), 0) FROM conversions WHERE offer_id = $o AND status = 1),"
        " (SELECT coalesce(sum(payout), 0) FROM conversions WHERE offer_id = $o AND status = 1)",
        {"o": offer},
    ).fetchone()
    assert one is not None
    base: dict[str, Any] = dict(
        zip(
            ("impressions", "clicks", "cpm_revenue", "cpm_payout", "cpa_revenue", "cpa_payout"),
            one,
            strict=True,
        )
    )
    counts = con.execute(
        "SELECT attribution, status, count(*) FROM conversions WHERE offer_id = $o GROUP BY ALL",
        {"o": offer},
    ).fetchall()
    for key in ("click", "view_through", "status 1", "status 2", "status 3", "status 5"):
        base[key] = 0
    for attribution, status, n in counts:
        base[attribution] += n
        base[f"status {status}"] += n
    return base


def test_each_metric_is_its_documented_formula(con: duckdb.DuckDBPyConnection) -> None:
    """Every metric the slices give is in docs/REPORTING.md's table, and equals its
    formula there, computed here from the raw rows of offer 1: 4 impressions, 2
    clicks, 2 click-attributed and 2 view-through conversions."""
    metrics = [m for m in METRICS if m != "currency"]
    assert _documented_metrics() == metrics
    assert set(FORMULAS) == set(metrics)
    row = _rows(run_slice(con, "offers", MARCH_1, SliceOptions(offers=(1,))))[0]
    base = _base(con, 1)
    assert base["view_through"] and base["click"]  # both kinds are there to tell apart
    for metric in metrics:
        assert row[metric] == FORMULAS[metric](base), metric


def test_a_file_from_before_the_attribution_split_gets_its_rollup_split(tmp_path: Path) -> None:
    """A DuckDB file at schema 006 (conversions in the rollup without their
    attribution) is migrated: its conversions' rows are made again, split by
    attribution, and no count or money changes."""
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )

    def apply(version: int, name: str, sql: str) -> None:
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])

    known = db.migrations()
    for migration in known[:5]:
        apply(*migration)
    rows = conversions_batch(
        [
            _conversion(_new_id(_ms(MORNING)), 1, 1),
            _conversion(_new_id(_ms(MORNING)), 1, 2),
            _conversion(_new_id(_ms(MORNING)), 1, 1, "view_through"),
        ]
    )
    con.register("old_rows", rows)
    con.execute("INSERT INTO conversions BY NAME SELECT * EXCLUDE (imp_id) FROM old_rows")
    apply(*known[5])  # 006 builds the rollup from the rows already there
    totals = (
        "SELECT sum(conversions), sum(approved), sum(pending), sum(cpa_revenue) FROM stats_hourly"
    )
    before = con.execute(totals).fetchone()
    assert db.migrate(con) == known[-1][0]
    assert con.execute(totals).fetchone() == before
    split = con.execute(
        "SELECT attribution, sum(conversions), sum(approved) FROM stats_hourly"
        " GROUP BY 1 ORDER BY 1"
    ).fetchall()
    assert split == [("click", 2, 1), ("view_through", 1, 1)]


def test_older_rejections_and_postbacks_learn_their_advertiser(tmp_path: Path) -> None:
    """A file at schema 008: its rejections, click rejections, server postbacks and
    rejection rollups get the advertiser of their offer from its other events;
    an offer never tracked stays without one."""
    con = duckdb.connect(str(tmp_path / "old.duckdb"))
    con.execute(
        "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR NOT NULL,"
        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    known = db.migrations()
    for version, name, sql in known:
        if version > 8:
            break
        con.execute(sql)
        con.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", [version, name])
    impressions = impressions_batch(_impressions(1, MORNING, 1, 100, 10, currency="USD"))
    con.register("old_impressions", impressions)
    con.execute("INSERT INTO impressions BY NAME SELECT * FROM old_impressions")
    con.execute(
        "INSERT INTO stats_hourly (hour, offer_id, pid, advertiser_id, currency, impressions)"
        " VALUES (TIMESTAMPTZ '2026-03-01 10:00:00+00', 1, 100, 10, 'USD', 1)"
    )
    for offer in (1, 9):
        con.execute(
            "INSERT INTO rejections VALUES (?, TIMESTAMPTZ '2026-03-01 10:00:00+00', ?, 100,"
            " 'offer_paused', NULL)",
            [f"r{offer}", offer],
        )
        con.execute(
            "INSERT INTO rejections_hourly VALUES (TIMESTAMPTZ '2026-03-01 10:00:00+00', ?,"
            " 100, 'offer_paused', 1)",
            [offer],
        )
    con.execute(
        "INSERT INTO server_postbacks (postback_id, ts, method, params, status, outcome,"
        " offer_id) VALUES ('p1', TIMESTAMPTZ '2026-03-01 10:00:00+00', 'GET', '{}', 2,"
        " 'refused', 1)"
    )
    assert db.migrate(con) == known[-1][0]
    assert con.execute("SELECT offer_id, advertiser_id FROM rejections ORDER BY 1").fetchall() == [
        (1, 10),
        (9, None),
    ]
    assert con.execute(
        "SELECT offer_id, advertiser_id FROM rejections_hourly ORDER BY 1"
    ).fetchall() == [(1, 10), (9, 0)]
    assert con.execute("SELECT advertiser_id FROM server_postbacks").fetchall() == [(10,)]
