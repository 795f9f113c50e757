"""The stats API's OpenAPI 3.1 document, served by the exporter at
``/api/v1/openapi.json``: the slices, their query parameters and formats, from the
code that parses and answers them (reports.slices, reports.slice_request)."""

from __future__ import annotations

from typing import Any

from app.edge.openapi import SECURITY_SCHEME, Schema, api_document, json_answer, ref
from app.events.statuses import CONVERSION_STATUS_LABELS
from reports.dashboard.sessions import COOKIE
from reports.formatting import MEDIA_TYPES
from reports.slice_request import PARAMETERS
from reports.slices import DIMENSIONS, MAX_LIMIT, SLICES

DASHBOARD_SESSION = "dashboardSession"

ARROW_STREAM = "application/vnd.apache.arrow.stream"
FORMAT_MEDIA_TYPES = {**MEDIA_TYPES, "arrow": ARROW_STREAM}
"""What each ``format`` is answered as (reports.exporter_server.stats)."""


def _list_of(names: list[str] | str) -> Schema:
    """Comma-separated values: ``names`` (a list of words, or a pattern of one)."""
    one = names if isinstance(names, str) else "|".join(names)
    return {"type": "string", "pattern": f"^({one})(,({one}))*$"}


_PARAMETER_SCHEMAS: dict[str, Schema] = {
    "from": {"type": "string", "format": "date"},
    "to": {"type": "string", "format": "date"},
    "tz": {"type": "string", "examples": ["UTC", "Europe/Berlin"]},
    "offer": _list_of("[0-9]+"),
    "affiliate": _list_of("[0-9]+"),
    "advertiser": _list_of("[0-9]+"),
    "status": _list_of(list(CONVERSION_STATUS_LABELS)),
    "group_by": _list_of(list(DIMENSIONS)),
    "sort": {"type": "string", "examples": ["revenue:desc,offer_id"]},
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    "errors": {"enum": ["0", "1"]},
}


def _parameters() -> list[dict[str, Any]]:
    """The slice, ``format``, and each parameter ``imptrack report`` also takes."""
    return [
        {
            "name": "slice",
            "in": "path",
            "required": True,
            "description": "; ".join(f"{name}: {s.title}" for name, s in SLICES.items()),
            "schema": {"enum": list(SLICES)},
        },
        {
            "name": "format",
            "in": "query",
            "required": False,
            "description": "How the slice is answered (arrow: an Arrow IPC stream, typed).",
            "schema": {"enum": list(FORMAT_MEDIA_TYPES), "default": "json"},
        },
        *(
            {
                "name": name,
                "in": "query",
                "required": False,
                "description": f"{description[0].upper()}{description[1:]}.",
                "schema": _PARAMETER_SCHEMAS.get(name, {"type": "string"}),
            }
            for name, description in PARAMETERS.items()
        ),
    ]


def _slice_answer() -> dict[str, Any]:
    content: dict[str, Any] = {
        media_type: {"schema": {"type": "string"}}
        for fmt, media_type in FORMAT_MEDIA_TYPES.items()
        if fmt != "json"
    }
    return {
        "description": "The slice in the format asked for: JSON (the default) with its "
        "columns and a row object per row, money as numbers with four decimals and "
        "dates ISO 8601; CSV; a text table; Parquet or an Arrow stream (typed).",
        "content": {"application/json": {"schema": ref("Slice")}, **content},
    }


def _error(description: str) -> dict[str, Any]:
    return json_answer(description, ref("Error"))


def stats_document() -> dict[str, Any]:
    """The stats API's OpenAPI 3.1 document."""
    value = {"type": ["string", "number", "boolean", "null"]}
    schemas: dict[str, Schema] = {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string", "description": "what was wrong"}},
            "required": ["error"],
            "additionalProperties": False,
        },
        "Slice": {
            "type": "object",
            "properties": {
                "slice": {"enum": list(SLICES)},
                "from": {"type": "string", "format": "date"},
                "to": {"type": "string", "format": "date"},
                "tz": {"type": "string"},
                "columns": {"type": "array", "items": {"type": "string"}},
                "rows": {
                    "type": "array",
                    "items": {"type": "object", "additionalProperties": value},
                },
            },
            "required": ["slice", "from", "to", "tz", "columns", "rows"],
            "additionalProperties": False,
        },
    }
    stats = {
        "get": {
            "operationId": "getSlice",
            "summary": "A statistics slice over whole days in a timezone",
            "description": "The query names are those of `imptrack report` "
            "(docs/REPORTING.md). Each parameter may be given once.",
            "parameters": _parameters(),
            # The key, or the dashboard's session (reports/dashboard), whose page
            # reads the slices here.
            "security": [{SECURITY_SCHEME: []}, {DASHBOARD_SESSION: []}],
            "responses": {
                "200": _slice_answer(),
                "400": _error(
                    "A parameter is wrong, unknown, or given twice, or the slice cannot be "
                    "narrowed or sorted that way."
                ),
                "401": _error("No API-Key header, or a wrong key, and no dashboard session."),
                "404": _error("No such slice: `error` names those there are."),
            },
        }
    }
    return api_document(
        title="imptrack stats API",
        description=(
            "The statistics slices, answered by the exporter from its DuckDB file. "
            "Every request needs the API-Key header (or the dashboard's session)."
        ),
        server="The exporter (EXPORTER_PORT, default 16067).",
        paths={"/stats/{slice}": stats},
        schemas=schemas,
        other_schemes={
            DASHBOARD_SESSION: {
                "type": "apiKey",
                "in": "cookie",
                "name": COOKIE,
                "description": (
                    "The session the dashboard's login form (POST /dashboard/login, "
                    "with the API key) gives the browser: 12 hours, signed with a key "
                    "derived from the API key."
                ),
            }
        },
    )
