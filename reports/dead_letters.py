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

_QUERIES = (
    ("dead_letter_deliveries", IMPRESSION),
    ("dead_letter_affiliate_postbacks", AFFILIATE_POSTBACK),
)
"""Each kind's query: it selects the task's fields by their names, and its attempt."""


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
    found = []
    con = db.open_reader(snapshot)
    try:
        for query, kind in _QUERIES:
            cursor = con.execute(load(query), params)
            names = [column[0] for column in cursor.description]
            for row in cursor.fetchall():
                task = dict(zip(names, row, strict=True))
                attempts = int(task.pop("attempt"))
                found.append(DeadLetter({**task, "kind": kind}, attempts))
    finally:
        con.close()
    return found
