"""Affiliate postback attempts into DuckDB, once each, and the Affiliate postbacks
slice that shows each status posted back as it stands (reports.columns,
reports.store, reports.slices), from the delivery log records the forwarder writes."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from app.events.records import AffiliatePostbackTask
from app.forwarding.forwarder import delivery_log_record
from app.forwarding.outcomes import AttemptResult
from app.ids import IdGenerator
from reports import db, store
from reports.columns import affiliate_postbacks_batch
from reports.slices import SliceOptions, date_range, run_slice
from reports.views import create_views
from tests.ids import TEST_SEAL

AT = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
MS = int(AT.timestamp() * 1000)
MARCH_1 = date_range("2026-03-01", "2026-03-01", "UTC")
_ids = IdGenerator(TEST_SEAL)


@pytest.fixture
def con(tmp_path: Path) -> duckdb.DuckDBPyConnection:
    return db.open_writer(tmp_path / "a.duckdb")


def _task(
    conversion_id: str, revision: int, status: int, told_at_s: int = 0, **fields: Any
) -> AffiliatePostbackTask:
    """A status told ``told_at_s`` seconds after 10:00 (by default a minute per revision)."""
    told_ms = MS + 1000 * (told_at_s or 60 * revision)
    values: dict[str, Any] = {
        "conversion_id": conversion_id,
        "revision": revision,
        # A generator of its own: one shared never steps back in time.
        "postback_id": IdGenerator(TEST_SEAL).new_id(now_ms=told_ms),
        "offer_id": 5,
        "pid": 3,
        "advertiser_id": 9,
        "conversion_status": status,
        "payout": "0" if status == 3 else "9.00",
        "currency": "EUR",
        "goal": "sale",
        "destination": "https://aff.example/pb?c={clickid}&s={status}",
        "url": f"https://aff.example/pb?c=x&s={status}",
        "action_id": "A-1",
        **fields,
    }
    return AffiliatePostbackTask(**values)


def _attempt(task: AffiliatePostbackTask, n: int, status: int | None, outcome: str) -> Any:
    result = AttemptResult(status, None if status == 200 else f"HTTP {status}", 12.5, False)
    return orjson.loads(delivery_log_record(task.asdict(), n, MS + 120_000 + n, result, outcome))


def test_each_status_told_is_a_row_with_its_latest_attempt(con: duckdb.DuckDBPyConnection) -> None:
    """Attempts shipped twice are stored once; the slice shows, per status told, the
    latest answer, its outcome and the attempts it took, newest status first."""
    conversion = _ids.new_id(now_ms=MS)
    pending, approved = _task(conversion, 1, 2), _task(conversion, 2, 1)
    declined_elsewhere = _task(
        _ids.new_id(now_ms=MS), 1, 3, told_at_s=30, offer_id=6, pid=4, advertiser_id=8
    )
    attempts = [
        _attempt(pending, 1, 200, "delivered"),
        _attempt(approved, 1, 500, "retrying"),
        _attempt(approved, 2, 500, "retrying"),
        _attempt(approved, 3, 200, "delivered"),
        _attempt(declined_elsewhere, 1, 404, "failed"),
    ]
    assert [a["kind"] for a in attempts] == ["affiliate_postback"] * 5
    batch = affiliate_postbacks_batch(attempts)
    written = store.write_batch(con, "c", store.Batch({"affiliate_postbacks": batch}, {}))
    assert written["affiliate_postbacks"] == 5
    again = store.write_batch(con, "c", store.Batch({"affiliate_postbacks": batch}, {}))
    assert again["affiliate_postbacks"] == 0

    rows = run_slice(con, "affiliate-postbacks", MARCH_1).as_dicts()
    shown = [
        (
            r["offer_id"],
            r["pid"],
            r["revision"],
            r["conversion_status"],
            r["payout"],
            r["http_status"],
            r["outcome"],
            r["attempts"],
            r["error"],
        )
        for r in rows
    ]
    assert shown == [
        (5, 3, 2, "approved", Decimal("9.0000"), 200, "delivered", 3, ""),
        (5, 3, 1, "pending", Decimal("9.0000"), 200, "delivered", 1, ""),
        (6, 4, 1, "declined", Decimal("0.0000"), 404, "failed", 1, "HTTP 404"),
    ]
    assert [r["status_at"] for r in rows] == [
        "2026-03-01 10:02:00",
        "2026-03-01 10:01:00",
        "2026-03-01 10:00:30",
    ]
    assert rows[0]["url"] == "https://aff.example/pb?c=x&s=1"
    assert {r["action_id"] for r in rows} == {"A-1"} and {r["goal"] for r in rows} == {"sale"}


def test_the_slice_is_narrowed_like_the_others(con: duckdb.DuckDBPyConnection) -> None:
    """By offer, affiliate, advertiser, the status told and the day it was told."""
    first = _task(_ids.new_id(now_ms=MS), 1, 1)
    other = _task(_ids.new_id(now_ms=MS), 1, 3, offer_id=6, pid=4, advertiser_id=8)
    batch = affiliate_postbacks_batch(
        [_attempt(first, 1, 200, "delivered"), _attempt(other, 1, 200, "delivered")]
    )
    store.write_batch(con, "c", store.Batch({"affiliate_postbacks": batch}, {}))

    def offers(options: SliceOptions, period: Any = MARCH_1) -> list[int]:
        found = run_slice(con, "affiliate-postbacks", period, options)
        return [r["offer_id"] for r in found.as_dicts()]

    assert sorted(offers(SliceOptions())) == [5, 6]
    assert offers(SliceOptions(offers=(6,))) == [6]
    assert offers(SliceOptions(affiliates=(3,))) == [5]
    assert offers(SliceOptions(advertisers=(8,))) == [6]
    assert offers(SliceOptions(statuses=("declined",))) == [6]
    assert offers(SliceOptions(), date_range("2026-03-02", "2026-03-02", "UTC")) == []
    create_views(con)
    assert con.execute("SELECT count(*) FROM affiliate_postback_outcomes").fetchall() == [(2,)]
