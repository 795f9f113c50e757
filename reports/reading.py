"""Reading slices for ``imptrack report``: from the exporter's file, or through the
exporter while it runs (it holds the file's write lock)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request

import duckdb

from app.edge.api_keys import HEADER
from app.exceptions import ReportError, ReportUnavailable
from app.installation_secrets import load_api_key
from app.settings import Settings
from reports import db
from reports.formatting import from_arrow_stream
from reports.slice_request import SliceRequest
from reports.slices import SliceOptions, SliceResult, run_slice


def _through_exporter(s: Settings, request: SliceRequest) -> SliceResult:
    query = urllib.parse.urlencode({**request.query(), "format": "arrow"})
    url = f"{s.exporter_url}/api/v1/stats/{request.name}?{query}"
    http_request = urllib.request.Request(url, headers={HEADER: load_api_key(s)})
    try:
        with urllib.request.urlopen(http_request, timeout=60) as response:
            return from_arrow_stream(response.read())
    except urllib.error.HTTPError as exc:
        raise ReportError(json.loads(exc.read()).get("error", str(exc))) from None
    except OSError as exc:
        raise ReportUnavailable(
            f"the reporting database is locked by another process and the exporter at "
            f"{s.exporter_url} does not answer ({exc})"
        ) from None


def read_request(s: Settings, request: SliceRequest) -> SliceResult:
    """The slice ``request`` asks for, from the reporting database of ``s``."""
    try:
        con = db.open_reader(s.exporter_db_path)
    except duckdb.IOException:
        # The running exporter holds the write lock; it answers reports itself.
        return _through_exporter(s, request)
    try:
        return run_slice(con, request.name, request.period, request.options)
    finally:
        con.close()


def read_slice(
    s: Settings,
    name: str,
    date_from: str | None,
    date_to: str | None,
    tz: str,
    options: SliceOptions | None = None,
) -> SliceResult:
    """A slice with default sort and no filters beyond ``options`` (the demo's reads)."""
    request = SliceRequest.parse(name, {"from": date_from, "to": date_to, "tz": tz})
    if options is not None:
        request = SliceRequest(name, request.period, options)
    return read_request(s, request)
