"""The statistics slices, as queries over the reporting database.

Aggregated slices (Daily, Advertisers, Offers, Affiliates, Custom) are one query
shape: the ``stats_hourly`` rollup (migration 006), narrowed by the filters, grouped
by the slice's dimensions and the currency, with the same metrics everywhere. Row
slices (Conversions, Server postbacks, Affiliate postbacks) and the by-reason/by-destination slices
(Postback errors, Rejections, Deliveries) have SQL of their own in ``reports/sql/slices``. Every
slice is then sorted and limited the same way.

Days and hours are those of the requested IANA timezone. The rollups are per UTC
hour, which is exact for every timezone whose offset is a whole number of hours
in the period; for others (Asia/Kolkata, +05:30) the slices read the rows instead,
also exact, only slower.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import pyarrow as pa

from app.attribution.matching import CLICK, VIEW_THROUGH
from app.events.records import SUB_FIELDS
from app.events.statuses import CONVERSION_STATUS_LABELS
from app.exceptions import ReportError, UnknownSlice
from reports import sql

DEFAULT_DAYS = 7
MAX_DAYS = 36_525
"""A century: deciding whether the hourly rollups are exact probes the period every
six hours (DateRange.whole_hour_offsets), 0.7 s of CPU for this many days."""
MAX_LIMIT = 1_000_000


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
    # OSError: a name the zone files cannot have (too long, a directory's).
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ReportError(
            f"--tz {tz!r} is not an IANA timezone name (e.g. UTC, Europe/Berlin)"
        ) from None
    today = today or datetime.now(zone).date()

    def parse(value: str, name: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ReportError(f"{name} {value!r} is not a date in the form YYYY-MM-DD") from None

    last_day = today if last is None else parse(last, "--to")
    first_day = None if first is None else parse(first, "--from")
    try:
        if first_day is None:
            first_day = last_day - timedelta(days=DEFAULT_DAYS - 1)
        period = DateRange(first_day, last_day, tz)
        # The period's bounds in UTC: a day near the ends of the calendar has none.
        period.start, period.end  # noqa: B018
    except OverflowError:
        raise ReportError(
            f"--from {first or '(a week before --to)'} to --to {last_day} in {tz} reaches "
            "past the years a date can have (1 to 9999)"
        ) from None
    if first_day > last_day:
        raise ReportError(f"--from {first_day} is after --to {last_day}")
    days = (last_day - first_day).days + 1
    if days > MAX_DAYS:
        raise ReportError(
            f"--from {first_day} to --to {last_day} is {days} days; a slice covers at most "
            f"{MAX_DAYS} (a century): ask for it in parts"
        )
    return period


@dataclass(frozen=True)
class SliceOptions:
    """What a slice is narrowed to besides its dates, and how it is ordered."""

    offers: tuple[int, ...] = ()
    affiliates: tuple[int, ...] = ()
    advertisers: tuple[int, ...] = ()
    statuses: tuple[str, ...] = ()  # conversion statuses by name (ConversionStatus.label)
    group_by: tuple[str, ...] = ()  # Custom slice only (keys of DIMENSIONS)
    sort: tuple[tuple[str, bool], ...] = ()  # (column, descending)
    limit: int | None = None
    errors_only: bool = False  # Server postbacks: only the refused ones


@dataclass(frozen=True)
class SliceResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    # The same rows with their types, when read from DuckDB or Arrow (Parquet output).
    table: pa.Table | None = field(default=None, compare=False, repr=False)

    def as_dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    @classmethod
    def from_arrow(cls, table: pa.Table) -> SliceResult:
        columns = table.column_names
        rows = [tuple(row[c] for c in columns) for row in table.to_pylist()]
        return cls(columns, rows, table)

    def to_arrow(self) -> pa.Table:
        if self.table is not None:
            return self.table
        return pa.Table.from_pylist(self.as_dicts())


# Dimension name (CLI/API) -> (output column, SQL over stats_hourly-shaped rows).
DIMENSIONS: dict[str, tuple[str, str]] = {
    "date": ("date", "CAST(timezone($tz, hour) AS DATE)"),
    "hour": ("hour", "date_trunc('hour', timezone($tz, hour))"),
    "offer": ("offer_id", "offer_id"),
    "affiliate": ("pid", "pid"),
    "advertiser": ("advertiser_id", "nullif(advertiser_id, 0)"),
    "goal": ("goal", "nullif(goal, '')"),
    "attribution": ("attribution", "nullif(attribution, '')"),
    **{sub: (sub, f"nullif({sub}, '')") for sub in SUB_FIELDS},
}

_SUBS_OF_ROWS = ", ".join(f"coalesce({s}, '') AS {s}" for s in SUB_FIELDS)
# The rows in stats_hourly's shape, for timezones the hourly rollup cannot serve.
_STATS_FROM_ROWS = f"""
    SELECT ts AS hour, offer_id, pid, coalesce(advertiser_id, 0) AS advertiser_id,
        currency, '' AS goal, '' AS attribution, {_SUBS_OF_ROWS},
        1 AS impressions, 0 AS clicks, 0 AS conversions, 0 AS approved, 0 AS pending,
        0 AS declined, 0 AS hold, revenue AS cpm_revenue, payout AS cpm_payout,
        0 AS cpa_revenue, 0 AS cpa_payout
    FROM impressions WHERE ts >= $start AND ts < $end
    UNION ALL BY NAME
    SELECT ts AS hour, offer_id, pid, advertiser_id, currency, '' AS goal, '' AS attribution,
        {_SUBS_OF_ROWS}, 0 AS impressions, 1 AS clicks, 0 AS conversions, 0 AS approved,
        0 AS pending, 0 AS declined, 0 AS hold, 0 AS cpm_revenue, 0 AS cpm_payout,
        0 AS cpa_revenue, 0 AS cpa_payout
    FROM clicks WHERE ts >= $start AND ts < $end
    UNION ALL BY NAME
    SELECT ts AS hour, offer_id, pid, advertiser_id, currency, goal, attribution,
        {_SUBS_OF_ROWS}, 0 AS impressions, 0 AS clicks, 1 AS conversions,
        (status = 1)::INTEGER AS approved, (status = 2)::INTEGER AS pending,
        (status = 3)::INTEGER AS declined, (status = 5)::INTEGER AS hold,
        0 AS cpm_revenue, 0 AS cpm_payout,
        CASE WHEN status = 1 THEN revenue ELSE 0 END AS cpa_revenue,
        CASE WHEN status = 1 THEN payout ELSE 0 END AS cpa_payout
    FROM conversions WHERE ts >= $start AND ts < $end
"""
_STATS_FROM_ROLLUP = "SELECT * FROM stats_hourly WHERE hour >= $start AND hour < $end"

# The filters every stats query takes; an empty list means "all".
_STATS_FILTERS = """
    (len($offers) = 0 OR list_contains($offers, offer_id))
    AND (len($affiliates) = 0 OR list_contains($affiliates, pid))
    AND (len($advertisers) = 0 OR list_contains($advertisers, advertiser_id))
"""
METRICS = (
    "currency",
    "impressions",
    "clicks",
    "ctr_pct",
    "conversions",
    "approved",
    "pending",
    "declined",
    "hold",
    "click_conversions",
    "cr_pct",
    "view_through_conversions",
    "view_through_per_1000",
    "revenue",
    "payout",
    "profit",
    "ecpm",
)


def _counted(statuses: Sequence[str], attribution: str | None = None) -> str:
    """Conversions counted: those of ``statuses`` (all when empty), of one
    ``attribution`` ('click', 'view_through') or of any."""
    columns = statuses or ("conversions",)
    if attribution is None:
        return " + ".join(f"sum({c})" for c in columns)
    return " + ".join(
        f"sum(CASE WHEN attribution = '{attribution}' THEN {c} ELSE 0 END)" for c in columns
    )


def _metrics_sql(statuses: Sequence[str]) -> str:
    # Each formula is written out in docs/REPORTING.md ("Metrics"), and pinned by
    # tests/unit/test_report_slices.py. With a status filter, the conversion counts
    # (and CR and the view-through rate) count only those statuses; money always
    # counts CPM plus the CPA of approved conversions.
    counted = _counted(statuses)
    by_click = _counted(statuses, CLICK)
    view_through = _counted(statuses, VIEW_THROUGH)
    return f"""
        currency,
        sum(impressions)::BIGINT AS impressions,
        sum(clicks)::BIGINT AS clicks,
        round(100.0 * sum(clicks) / nullif(sum(impressions), 0), 2) AS ctr_pct,
        ({counted})::BIGINT AS conversions,
        sum(approved)::BIGINT AS approved,
        sum(pending)::BIGINT AS pending,
        sum(declined)::BIGINT AS declined,
        sum(hold)::BIGINT AS hold,
        ({by_click})::BIGINT AS click_conversions,
        round(100.0 * ({by_click}) / nullif(sum(clicks), 0), 2) AS cr_pct,
        ({view_through})::BIGINT AS view_through_conversions,
        round(1000.0 * ({view_through}) / nullif(sum(impressions), 0), 2)
            AS view_through_per_1000,
        (sum(cpm_revenue) + sum(cpa_revenue))::DECIMAL(18, 4) AS revenue,
        (sum(cpm_payout) + sum(cpa_payout))::DECIMAL(18, 4) AS payout,
        (sum(cpm_revenue) + sum(cpa_revenue) - sum(cpm_payout) - sum(cpa_payout))
            ::DECIMAL(18, 4) AS profit,
        round(1000 * (sum(cpm_revenue) + sum(cpa_revenue)) / nullif(sum(impressions), 0), 4)
            ::DECIMAL(18, 4) AS ecpm"""


def stats_query(dimensions: Sequence[str], statuses: Sequence[str], exact: bool) -> str:
    """The aggregated slice grouped by ``dimensions`` (keys of :data:`DIMENSIONS`)."""
    selected = ", ".join(f"{DIMENSIONS[d][1]} AS {DIMENSIONS[d][0]}" for d in dimensions)
    source = _STATS_FROM_ROWS if exact else _STATS_FROM_ROLLUP
    # GROUP BY ALL groups by the dimension expressions themselves: their output names
    # (hour, advertiser_id, sub1, ...) are also input columns and would bind to those.
    return (
        f"SELECT {selected + ',' if selected else ''}{_metrics_sql(statuses)}\n"
        f"FROM ({source}) AS base\nWHERE {_STATS_FILTERS}\nGROUP BY ALL"
    )


@dataclass(frozen=True)
class Slice:
    """One slice: how to build its query, and what it may be narrowed and sorted by."""

    name: str
    title: str
    query: Callable[[SliceOptions, bool], str]
    default_sort: tuple[tuple[str, bool], ...]
    filters: frozenset[str] = frozenset({"offer", "affiliate", "advertiser", "status"})
    needs_tz_exactness: bool = True  # reads hourly rollups (else: rows only)

    def check(self, options: SliceOptions) -> None:
        given = {
            "offer": options.offers,
            "affiliate": options.affiliates,
            "advertiser": options.advertisers,
            "status": options.statuses,
        }
        for name, value in given.items():
            if value and name not in self.filters:
                raise ReportError(
                    f"the {self.title} slice cannot be narrowed by {name}; it takes "
                    f"{', '.join(sorted(self.filters)) or 'no filters'}"
                )
        if options.group_by and self.name != "custom":
            raise ReportError("--group-by is for the custom slice only")
        if options.errors_only and self.name != "postbacks":
            raise ReportError("--errors is for the postbacks slice only")
        for status in options.statuses:
            if status not in CONVERSION_STATUS_LABELS:
                raise ReportError(
                    f"unknown conversion status {status!r}; "
                    f"known: {', '.join(CONVERSION_STATUS_LABELS)}"
                )
        if options.limit is not None and not 1 <= options.limit <= MAX_LIMIT:
            raise ReportError(f"--limit must be between 1 and {MAX_LIMIT}, not {options.limit}")


def _stats_slice(name: str, title: str, dimensions: tuple[str, ...]) -> Slice:
    columns = tuple(DIMENSIONS[d][0] for d in dimensions)
    return Slice(
        name,
        title,
        lambda options, exact: stats_query(dimensions, options.statuses, exact),
        tuple((c, False) for c in (*columns, "currency")),
    )


def _custom_query(options: SliceOptions, exact: bool) -> str:
    return stats_query(options.group_by or ("date",), options.statuses, exact)


# Rejected impressions and clicks in one shape, from the hourly rollups or the rows.
_REJECTED_FROM_ROLLUP = """
    SELECT hour, reason, offer_id, pid, nullif(advertiser_id, 0) AS advertiser_id,
        rejections AS impressions, 0 AS clicks
    FROM rejections_hourly
    UNION ALL
    SELECT hour, reason, offer_id, pid, nullif(advertiser_id, 0), 0, rejections
    FROM click_rejections_hourly
"""
_REJECTED_FROM_ROWS = """
    SELECT ts AS hour, reason, offer_id, pid, advertiser_id, 1 AS impressions, 0 AS clicks
    FROM rejections
    UNION ALL
    SELECT ts, reason, offer_id, pid, advertiser_id, 0, 1 FROM click_rejections
"""


def _rejections_query(options: SliceOptions, exact: bool) -> str:
    source = _REJECTED_FROM_ROWS if exact else _REJECTED_FROM_ROLLUP
    return f"WITH rejected AS ({source})\n{sql.load('slices/rejections')}"


SLICES: dict[str, Slice] = {
    s.name: s
    for s in (
        _stats_slice("daily", "Daily", ("date",)),
        _stats_slice("advertisers", "Advertisers", ("advertiser",)),
        _stats_slice("offers", "Offers", ("offer", "advertiser")),
        _stats_slice("affiliates", "Affiliates", ("affiliate",)),
        Slice(
            "custom",
            "Custom",
            _custom_query,
            (),  # sorted by its dimensions, whatever they are
        ),
        Slice(
            "conversions",
            "Conversions",
            lambda options, exact: sql.load("slices/conversions"),
            (("created", True), ("conversion_id", True)),
            needs_tz_exactness=False,
        ),
        Slice(
            "postbacks",
            "Server postbacks",
            lambda options, exact: sql.load("slices/postbacks"),
            (("received", True), ("postback_id", True)),
            filters=frozenset({"offer", "affiliate", "advertiser"}),
            needs_tz_exactness=False,
        ),
        Slice(
            "postback-errors",
            "Postback errors",
            lambda options, exact: sql.load("slices/postback_errors"),
            (("refusals", True), ("error_kind", False)),
            filters=frozenset({"offer", "affiliate", "advertiser"}),
            needs_tz_exactness=False,
        ),
        Slice(
            "rejections",
            "Rejections",
            _rejections_query,
            (("rejections", True), ("reason", False)),
            filters=frozenset({"offer", "affiliate", "advertiser"}),
        ),
        Slice(
            "deliveries",
            "Deliveries",
            lambda options, exact: sql.load("slices/deliveries"),
            (("offer_id", False), ("destination", False)),
            filters=frozenset({"offer", "affiliate", "advertiser"}),
            needs_tz_exactness=False,
        ),
        Slice(
            "affiliate-postbacks",
            "Affiliate postbacks",
            lambda options, exact: sql.load("slices/affiliate_postbacks"),
            (("status_at", True), ("conversion_id", True), ("revision", True), ("url", False)),
            needs_tz_exactness=False,
        ),
    )
}
GROUPABLE = tuple(DIMENSIONS)


def slice_named(name: str) -> Slice:
    """The slice called ``name`` (CLI/API), or :class:`UnknownSlice` naming those there are."""
    try:
        return SLICES[name]
    except KeyError:
        raise UnknownSlice(f"unknown slice {name!r}; known: {', '.join(SLICES)}") from None


def parse_group_by(value: str | None) -> tuple[str, ...]:
    """``date,offer,sub1`` → dimension names, checked."""
    if not value:
        return ()
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    for name in names:
        if name not in DIMENSIONS:
            raise ReportError(
                f"cannot group by {name!r}; the dimensions are {', '.join(GROUPABLE)}"
            )
    if len(set(names)) != len(names):
        raise ReportError(f"--group-by {value!r} names a dimension twice")
    return names


def parse_sort(value: str | None) -> tuple[tuple[str, bool], ...]:
    """``revenue:desc,offer_id`` → ((column, descending), ...); columns are checked
    against the slice's own when it runs."""
    if not value:
        return ()
    keys = []
    for part in value.split(","):
        column, _, direction = part.strip().partition(":")
        if direction.lower() not in ("", "asc", "desc"):
            raise ReportError(f"sort direction {direction!r} of {column!r} is not asc or desc")
        keys.append((column, direction.lower() == "desc"))
    return tuple(keys)


def parse_ids(value: str | None, name: str) -> tuple[int, ...]:
    """``12,14`` → (12, 14)."""
    if not value:
        return ()
    try:
        ids = tuple(int(part) for part in value.split(",") if part.strip())
    except ValueError:
        raise ReportError(f"--{name} {value!r} is not a comma-separated list of ids") from None
    if any(i < 0 or i > 2**31 - 1 for i in ids):
        raise ReportError(f"--{name} {value!r} has an id out of range")
    return ids


def parse_statuses(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    return tuple(part.strip().lower() for part in value.split(",") if part.strip())


def _ordered(query: str, columns: list[str], sort: Sequence[tuple[str, bool]]) -> str:
    for column, _ in sort:
        if column not in columns:
            raise ReportError(f"cannot sort by {column!r}; the columns are {', '.join(columns)}")
    keys = ", ".join(f'"{c}" {"DESC" if d else "ASC"} NULLS LAST' for c, d in sort)
    return f"SELECT * FROM ({query}) AS slice" + (f" ORDER BY {keys}" if keys else "")


def run_slice(
    con: duckdb.DuckDBPyConnection,
    name: str,
    period: DateRange,
    options: SliceOptions = SliceOptions(),
) -> SliceResult:
    """Slice ``name`` over ``period``, narrowed, sorted and limited by ``options``."""
    spec = slice_named(name)
    spec.check(options)
    exact = spec.needs_tz_exactness and not period.whole_hour_offsets
    query = spec.query(options, exact)
    params = {
        "start": period.start,
        "end": period.end,
        "tz": period.tz,
        "offers": list(options.offers),
        "affiliates": list(options.affiliates),
        "advertisers": list(options.advertisers),
        "statuses": [CONVERSION_STATUS_LABELS[s].value for s in options.statuses],
        "errors_only": options.errors_only,
    }
    cur = con.cursor()
    try:
        # Only the parameters the query names: DuckDB refuses unused ones.
        used = {k: v for k, v in params.items() if f"${k}" in query}
        columns = [d[0] for d in cur.execute(f"SELECT * FROM ({query}) LIMIT 0", used).description]
        # Custom: by its dimensions (the columns before the metrics), then currency.
        default = spec.default_sort or tuple(
            (c, False) for c in columns[: columns.index("currency") + 1]
        )
        # The default order breaks ties, so equal rows come in the same order each
        # time (a limit then always keeps the same ones).
        chosen = tuple(options.sort)
        ties = tuple(key for key in default if key[0] not in {c for c, _ in chosen})
        ordered = _ordered(query, columns, chosen + ties)
        if options.limit is not None:
            ordered += f" LIMIT {int(options.limit)}"
        table = cur.sql(ordered, params=used).to_arrow_table()
    finally:
        cur.close()
    return SliceResult.from_arrow(table)
