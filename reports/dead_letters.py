"""The dead-lettered deliveries ``imptrack deliveries replay`` may send again, read
from the analysts' DuckDB snapshot (reports/sql/dead_letter_*.sql): each as the task
it was (the fields app.events.records' ForwardTask or AffiliatePostbackTask holds)
with the attempts made at it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from app.events.records import AFFILIATE_POSTBACK, IMPRESSION
from reports import db
from reports.sql import load

_IMPRESSION_FIELDS = ("aimp_id", "offer_id", "pid", "advertiser_id", "destination", "url")
_AFFILIATE_FIELDS = (
    "conversion_id",
    "revision",
    "postback_id",
    "offer_id",
    "pid",
    "advertiser_id",
    "conversion_status",
    "payout",
    "currency",
    "goal",
    "destination",
    "url",
    "action_id",
)


@dataclass(frozen=True)
class DeadLetter:
    task: dict[str, Any]
    """The task's fields, its ``kind`` included."""
    attempts: int


def dead_letters(
    snapshot: Path,
    since: datetime,
    until: datetime,
    offer_id: int | None = None,
    destination: str | None = None,
) -> list[DeadLetter]:
    """Impressions' deliveries first, then affiliate postbacks', each oldest first."""
    params = {
        "from_ts": since,
        "to_ts": until,
        "offer_id": offer_id,
        "destination": destination,
    }
    con = db.open_reader(snapshot)
    try:
        impressions = con.execute(load("dead_letter_deliveries"), params).fetchall()
        affiliates = con.execute(load("dead_letter_affiliate_postbacks"), params).fetchall()
    finally:
        con.close()
    found = [
        DeadLetter(
            {**dict(zip(_IMPRESSION_FIELDS, row, strict=False)), "kind": IMPRESSION}, row[-1]
        )
        for row in impressions
    ]
    found += [
        DeadLetter(
            {**dict(zip(_AFFILIATE_FIELDS, row, strict=False)), "kind": AFFILIATE_POSTBACK}, row[-1]
        )
        for row in affiliates
    ]
    return found
