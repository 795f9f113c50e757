"""Conversions, postback outcomes and impression money into DuckDB, and the slices
that show them (reports.store, reports.columns, reports.slices)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from app.attribution.params import MAX_KEPT_VALUE_LENGTH, MAX_PARAMETERS, collect_params
from app.ids import IdGenerator
from reports import db, store
from reports.columns import conversions_batch, impressions_batch, server_postbacks_batch
from reports.slices import SliceOptions, date_range, run_slice
from tests.ids import TEST_SEAL

AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
MS = int(AT.timestamp() * 1000)
_ids = IdGenerator(TEST_SEAL)


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return db.open_writer(tmp_path / "c.duckdb")


def _conversion(conversion_id: str, revision: int, status: int, **fields: Any) -> dict[str, Any]:
    return {
        "conversion_id": conversion_id,
        "revision": revision,
        "postback_id": conversion_id,
        "offer_id": 5,
        "pid": 3,
        "advertiser_id": 9,
        "attribution": "click",
        "goal": "1",
        "status": status,
        "revenue": "12.00",
        "payout": "9.00",
        "currency": "EUR",
        "event_ms": MS - 1000,
        "created_ms": MS,
        "updated_ms": MS + revision,
        "clickid": _ids.new_id(now_ms=MS - 1000),
        "custom_fields": {"custom_field2": "x"},
        **fields,
    }


def _write(con: duckdb.DuckDBPyConnection, kind: str, table: Any, offset: int) -> int:
    return store.write_batch(con, "c", store.Batch({kind: table}, {("t", 0): offset}))[kind]


def test_a_conversion_keeps_its_highest_revision(con: duckdb.DuckDBPyConnection) -> None:
    """Replays store nothing new; a status update replaces the row; an older revision
    arriving late changes nothing; two revisions in one batch keep the higher."""
    one, two = _ids.new_id(now_ms=MS), _ids.new_id(now_ms=MS)
    first = [_conversion(one, 1, 2), _conversion(two, 1, 1)]
    assert _write(con, "conversions", conversions_batch(first + first[:1]), 1) == 2
    assert _write(con, "conversions", conversions_batch(first), 2) == 0
    update = [_conversion(one, 1, 2), _conversion(one, 2, 1), _conversion(two, 1, 1)]
    assert _write(con, "conversions", conversions_batch(update), 3) == 1
    assert _write(con, "conversions", conversions_batch(first[:1]), 4) == 0
    rows = con.execute(
        "SELECT conversion_id, revision, status, revenue, custom_field2 FROM conversions"
        " ORDER BY conversion_id"
    ).fetchall()
    # Sorted by id, whose order within one millisecond is the sealed bits'.
    assert rows == sorted([(one, 2, 1, Decimal("12"), "x"), (two, 1, 1, Decimal("12"), "x")])


def test_each_postback_outcome_is_stored_once_with_its_parameters(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """Outcomes deduplicated by postback_id; params kept as JSON, the IDs searchable."""
    pid = _ids.new_id(now_ms=MS)
    outcome = {
        "postback_id": pid,
        "method": "POST",
        "params": {"clickid": "abc", "action_id": "A", "sum": "1.5"},
        "ip": "1.2.3.4",
        "status": 2,
        "outcome": "refused",
        "error": "unknown clickid abc",
    }
    table = server_postbacks_batch([outcome, outcome])
    assert _write(con, "server_postbacks", table, 1) == 1
    assert _write(con, "server_postbacks", table, 2) == 0
    row = con.execute(
        "SELECT clickid, action_id, aimp_id, params->>'sum', status, error FROM server_postbacks"
    ).fetchall()
    assert row == [("abc", "A", None, "1.5", 2, "unknown clickid abc")]


def test_daily_money_is_cpm_plus_approved_cpa_per_currency(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """3 impressions at CPM 2.50/1.75 EUR earn 0.0075/0.00525; one approved conversion
    adds 12/9; a pending one counts as a conversion without money; USD stays apart."""
    impressions = [
        {"aimp_id": _ids.new_id(now_ms=MS), "offer_id": 5, "pid": 3}
        | {"revenue": "0.0025", "payout": "0.00175", "currency": "EUR"}
        for _ in range(3)
    ] + [{"aimp_id": _ids.new_id(now_ms=MS), "offer_id": 6, "pid": 3}]
    _write(con, "impressions", impressions_batch(impressions), 1)
    hourly = con.execute(
        "SELECT currency, impressions, revenue, payout FROM impressions_hourly ORDER BY ALL"
    ).fetchall()
    assert hourly == [("EUR", 3, Decimal("0.0075"), Decimal("0.00525")), ("USD", 1, 0, 0)]
    made = [
        _conversion(_ids.new_id(now_ms=MS), 1, 1),
        _conversion(_ids.new_id(now_ms=MS), 1, 2),
    ]
    _write(con, "conversions", conversions_batch(made), 2)
    rows = run_slice(con, "daily", date_range("2026-03-01", "2026-03-01", "UTC")).as_dicts()
    eur = next(r for r in rows if r["currency"] == "EUR")
    assert (eur["impressions"], eur["conversions"], eur["approved"]) == (3, 2, 1)
    assert (eur["revenue"], eur["payout"], eur["profit"]) == (
        Decimal("12.0075"),
        Decimal("9.0053"),
        Decimal("3.0023"),
    )
    usd = next(r for r in rows if r["currency"] == "USD")
    assert (usd["impressions"], usd["revenue"]) == (1, Decimal("0"))
    listed = run_slice(con, "conversions", date_range("2026-03-01", "2026-03-01", "UTC")).as_dicts()
    assert sorted(r["status"] for r in listed) == ["approved", "pending"]


def test_the_postbacks_slice_lists_refusals_alone_on_request(
    con: duckdb.DuckDBPyConnection,
) -> None:
    """--errors keeps status 2 only; without it every postback is listed."""
    base = {"method": "GET", "params": {}, "outcome": "refused", "status": 2, "error": "e"}
    rows = [
        {**base, "postback_id": _ids.new_id(now_ms=MS)},
        {**base, "postback_id": _ids.new_id(now_ms=MS), "status": 1, "outcome": "created"},
    ]
    _write(con, "server_postbacks", server_postbacks_batch(rows), 1)
    period = date_range("2026-03-01", "2026-03-01", "UTC")
    assert len(run_slice(con, "postbacks", period).rows) == 2
    refused = run_slice(con, "postbacks", period, SliceOptions(errors_only=True)).as_dicts()
    assert [r["postback_id"] for r in refused] == [rows[0]["postback_id"]]


def test_collected_parameters_say_what_refuses_them() -> None:
    """A repeated name keeps its first value and refuses the postback; too many
    parameters or a long name refuse it; long values are cut for the log."""
    params, problem = collect_params([("clickid", "a"), ("clickid", "b"), ("sum", "1")])
    assert (params, problem) == ({"clickid": "a", "sum": "1"}, "clickid is given more than once")
    _, problem = collect_params((f"p{n}", "v") for n in range(MAX_PARAMETERS + 1))
    assert problem == f"more than {MAX_PARAMETERS} parameters"
    _, problem = collect_params([("n" * 65, "v")])
    assert problem == "a parameter name is longer than 64 characters"
    params, problem = collect_params([("note", "x" * 5000)])
    assert problem is None and params["note"] == "x" * MAX_KEPT_VALUE_LENGTH + "…"


def test_an_impression_earns_the_cpm_price_per_thousand_exactly() -> None:
    """CPM 2.50/1.75 per thousand is 0.0025/0.00175 per impression, in the CPM
    payment's currency; an offer without CPM earns nothing in its own currency."""
    from app.attribution.payments import impression_earning, offer_currency
    from app.catalog.model import Offer, Payment

    cpm = Offer(
        1, "O", 1, payments=(Payment("CPA", "9", "5"), Payment("CPM", "2.50", "1.75", "EUR"))
    )
    earning = impression_earning(cpm)
    assert (earning.revenue, earning.payout, earning.currency) == (
        Decimal("0.0025"),
        Decimal("0.00175"),
        "EUR",
    )
    cpa_only = Offer(2, "O", 1, payments=(Payment("CPA", "9", "5", "GBP"),))
    assert impression_earning(cpa_only).revenue == 0 and offer_currency(cpa_only) == "GBP"
    assert offer_currency(Offer(3, "O", 1)) == "USD"
