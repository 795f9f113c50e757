"""Reading slices for ``imptrack report``: from the file, or through the exporter."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import duckdb

from app.exceptions import ReportError
from app.settings import settings
from reports import db
from reports.formatting import render
from reports.slices import SLICES, SliceOptions, SliceResult, date_range


def _through_exporter(name: str, params: dict[str, str]) -> SliceResult:
    query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
    url = f"{settings().exporter_url}/reports/{name}?{query}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ReportError(json.loads(exc.read()).get("error", str(exc))) from None
    except OSError as exc:
        raise ReportError(
            f"the reporting database is locked by another process and the exporter at "
            f"{settings().exporter_url} does not answer ({exc})"
        ) from None
    return SliceResult(body["columns"], [tuple(row) for row in body["rows"]])


def read_slice(
    name: str,
    date_from: str | None,
    date_to: str | None,
    tz: str,
    options: SliceOptions | None = None,
) -> SliceResult:
    period = date_range(date_from, date_to, tz)
    options = options or SliceOptions()
    try:
        con = db.open_reader(settings().duckdb_path)
    except duckdb.IOException:
        # The running exporter holds the write lock; it answers reports itself.
        return _through_exporter(
            name,
            {
                "from": period.first.isoformat(),
                "to": period.last.isoformat(),
                "tz": tz,
                "errors": "1" if options.errors_only else "0",
            },
        )
    try:
        return SLICES[name](con, period, options)
    finally:
        con.close()


def print_report(
    name: str,
    date_from: str | None,
    date_to: str | None,
    tz: str,
    fmt: str,
    options: SliceOptions | None = None,
) -> str:
    return render(read_slice(name, date_from, date_to, tz, options), fmt)
