"""The refused postbacks ``imptrack postbacks replay`` may send again, read from the
analysts' DuckDB snapshot (reports/sql/refused_postbacks.sql)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from reports import db
from reports.sql import load


@dataclass(frozen=True)
class RefusedPostback:
    postback_id: str
    method: str
    params: dict[str, str]
    ip: str | None
    original: str
    """The postback as the advertiser sent it (itself, or what a replay replayed)."""
    error_kind: str | None
    offer_id: int | None


def refused_postbacks(
    snapshot: Path,
    since: datetime,
    until: datetime,
    offer_id: int | None = None,
    error_kind: str | None = None,
) -> list[RefusedPostback]:
    """Refused in [``since``, ``until``), oldest first, without those whose original
    was accepted since or sent again after them."""
    con = db.open_reader(snapshot)
    try:
        rows = con.execute(
            load("refused_postbacks"),
            {"from_ts": since, "to_ts": until, "offer_id": offer_id, "error_kind": error_kind},
        ).fetchall()
    finally:
        con.close()
    return [
        RefusedPostback(
            postback_id=row[0],
            method=row[1],
            params={str(k): str(v) for k, v in json.loads(row[2]).items()},
            ip=row[3],
            original=row[4],
            error_kind=row[5],
            offer_id=row[6],
        )
        for row in rows
    ]
