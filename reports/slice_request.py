"""One request for a slice, as the CLI and the stats API both spell it.

The same names everywhere: ``imptrack report custom --group-by date,offer`` is
``GET /api/v1/stats/custom?group_by=date,offer``, and the CLI reads through the
exporter by sending exactly that query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.events.statuses import CONVERSION_STATUS_LABELS
from app.exceptions import ReportError
from reports.slices import (
    DateRange,
    SliceOptions,
    date_range,
    parse_group_by,
    parse_ids,
    parse_sort,
    parse_statuses,
    slice_named,
)

# Query parameter -> what it is, for errors and the docs.
PARAMETERS = {
    "from": "first day, YYYY-MM-DD (default: six days before --to)",
    "to": "last day, inclusive (default: today in the timezone)",
    "tz": "IANA timezone of the days and hours (default UTC)",
    "offer": "offer ids, comma-separated",
    "affiliate": "affiliate ids (pid), comma-separated",
    "advertiser": "advertiser ids, comma-separated",
    "status": f"conversion statuses: {', '.join(CONVERSION_STATUS_LABELS)}",
    "group_by": "custom slice: date, hour, offer, affiliate, advertiser, goal, sub1..sub8",
    "sort": "column[:asc|desc], comma-separated",
    "limit": "at most this many rows",
    "errors": "postbacks slice: 1 for the refused ones only",
}


@dataclass(frozen=True)
class SliceRequest:
    name: str
    period: DateRange
    options: SliceOptions

    @classmethod
    def parse(cls, name: str, values: Mapping[str, str | None]) -> SliceRequest:
        """Check and parse a slice name and its parameters (absent ones: None)."""
        spec = slice_named(name)
        unknown = sorted(set(values) - set(PARAMETERS))
        if unknown:
            raise ReportError(f"unknown parameter {unknown[0]!r}; known: {', '.join(PARAMETERS)}")
        limit = values.get("limit")
        try:
            parsed_limit = int(limit) if limit not in (None, "") else None
        except ValueError:
            raise ReportError(f"limit {limit!r} is not a whole number") from None
        errors = values.get("errors") or "0"
        if errors not in ("0", "1"):
            raise ReportError(f"errors {errors!r} must be 0 or 1")
        options = SliceOptions(
            offers=parse_ids(values.get("offer"), "offer"),
            affiliates=parse_ids(values.get("affiliate"), "affiliate"),
            advertisers=parse_ids(values.get("advertiser"), "advertiser"),
            statuses=parse_statuses(values.get("status")),
            group_by=parse_group_by(values.get("group_by")),
            sort=parse_sort(values.get("sort")),
            limit=parsed_limit,
            errors_only=errors == "1",
        )
        spec.check(options)
        period = date_range(values.get("from"), values.get("to"), values.get("tz") or "UTC")
        return cls(name, period, options)

    def query(self) -> dict[str, str]:
        """The request as query parameters (what :meth:`parse` reads back)."""
        o = self.options
        values = {
            "from": self.period.first.isoformat(),
            "to": self.period.last.isoformat(),
            "tz": self.period.tz,
            "offer": ",".join(map(str, o.offers)),
            "affiliate": ",".join(map(str, o.affiliates)),
            "advertiser": ",".join(map(str, o.advertisers)),
            "status": ",".join(o.statuses),
            "group_by": ",".join(o.group_by),
            "sort": ",".join(f"{c}:{'desc' if d else 'asc'}" for c, d in o.sort),
            "limit": "" if o.limit is None else str(o.limit),
            "errors": "1" if o.errors_only else "",
        }
        return {k: v for k, v in values.items() if v}
