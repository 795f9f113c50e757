"""The statistics slices, as queries over the reporting database."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb

from app.exceptions import ReportError
from reports import sql

DEFAULT_DAYS = 7


@dataclass(frozen=True)
class DateRange:
    """Whole days ``first``..``last`` (inclusive) in timezone ``tz``."""

    first: date
    last: date
    tz: str

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.tz)

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, time(), self.zone).astimezone(UTC)

    @property
    def end(self) -> datetime:
        return datetime.combine(self.last + timedelta(days=1), time(), self.zone).astimezone(UTC)

    @property
    def whole_hour_offsets(self) -> bool:
        """Whether every UTC hour falls inside one local day, so hourly rollups are exact."""
        probe = self.start
        while probe <= self.end:
            offset = probe.astimezone(self.zone).utcoffset() or timedelta()
            if offset.total_seconds() % 3600:
                return False
            probe += timedelta(hours=6)
        return True


def date_range(
    first: str | None, last: str | None, tz: str, today: date | None = None
) -> DateRange:
    """Parse CLI/API dates (``YYYY-MM-DD``); default: the last seven days up to today in ``tz``."""
    try:
        zone = ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ReportError(
            f"--tz {tz!r} is not an IANA timezone name (e.g. UTC, Europe/Berlin)"
        ) from None
    today = today or datetime.now(zone).date()

    def parse(value: str | None, name: str, default: date) -> date:
        if value is None:
            return default
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ReportError(f"{name} {value!r} is not a date in the form YYYY-MM-DD") from None

    last_day = parse(last, "--to", today)
    first_day = parse(first, "--from", last_day - timedelta(days=DEFAULT_DAYS - 1))
    if first_day > last_day:
        raise ReportError(f"--from {first_day} is after --to {last_day}")
    return DateRange(first_day, last_day, tz)


@dataclass(frozen=True)
class SliceOptions:
    """What a slice is narrowed to besides its dates."""

    errors_only: bool = False  # postbacks: only the refused ones


@dataclass(frozen=True)
class SliceResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _run(con: duckdb.DuckDBPyConnection, query: str, params: dict[str, Any]) -> SliceResult:
    cursor = con.execute(query, params)
    columns = [d[0] for d in cursor.description or []]
    return SliceResult(columns, cursor.fetchall())


def _from_rollup_or_rows(
    con: duckdb.DuckDBPyConnection, name: str, period: DateRange, params: dict[str, Any]
) -> SliceResult:
    """Hourly rollups answer when every UTC hour lies inside one local day; other
    timezones (e.g. +05:30) are answered from the rows."""
    query = sql.load(f"slices/{name}" if period.whole_hour_offsets else f"slices/{name}_exact")
    return _run(con, query, {"start": period.start, "end": period.end, **params})


def daily(
    con: duckdb.DuckDBPyConnection, period: DateRange, options: SliceOptions = SliceOptions()
) -> SliceResult:
    """Per day of ``period`` in its timezone and per currency: impressions, clicks,
    conversions, and the money (CPM per impression plus CPA per approved conversion)."""
    return _from_rollup_or_rows(con, "daily", period, {"tz": period.tz})


def rejections(
    con: duckdb.DuckDBPyConnection, period: DateRange, options: SliceOptions = SliceOptions()
) -> SliceResult:
    """Impressions not tracked in ``period``, per reason code, with their share."""
    return _from_rollup_or_rows(con, "rejections", period, {})


def deliveries(
    con: duckdb.DuckDBPyConnection, period: DateRange, options: SliceOptions = SliceOptions()
) -> SliceResult:
    """What became of the impressions of ``period`` forwarded to advertisers, per offer
    and destination URL."""
    return _run(con, sql.load("slices/deliveries"), {"start": period.start, "end": period.end})


def conversions(
    con: duckdb.DuckDBPyConnection, period: DateRange, options: SliceOptions = SliceOptions()
) -> SliceResult:
    """The conversions created in ``period``, newest first, as they stand now."""
    return _run(
        con,
        sql.load("slices/conversions"),
        {"start": period.start, "end": period.end, "tz": period.tz},
    )


def postbacks(
    con: duckdb.DuckDBPyConnection, period: DateRange, options: SliceOptions = SliceOptions()
) -> SliceResult:
    """Server postbacks: every postback received in ``period``, newest first, with its
    parameters, source IP, answer and error (only the refused ones with
    ``errors_only``)."""
    return _run(
        con,
        sql.load("slices/postbacks"),
        {
            "start": period.start,
            "end": period.end,
            "tz": period.tz,
            "errors_only": options.errors_only,
        },
    )


SLICES = {
    "daily": daily,
    "rejections": rejections,
    "deliveries": deliveries,
    "conversions": conversions,
    "postbacks": postbacks,
}
