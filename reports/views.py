"""The views analysts query in the DuckDB file: the aggregated slices themselves,
in UTC and over all time, made from the same definitions as ``imptrack report``
(so the two cannot drift apart). Recreated each time the exporter opens its file.
"""

from __future__ import annotations

import duckdb

from reports.slices import SLICES, SliceOptions, stats_query

# View name -> the dimensions of its slice (reports.slices.DIMENSIONS).
STATS_VIEWS = {
    "daily": ("date",),
    "hourly": ("hour",),
    "advertisers": ("advertiser",),
    "offers": ("offer", "advertiser"),
    "affiliates": ("affiliate",),
    "offers_daily": ("date", "offer", "advertiser"),
    "affiliates_daily": ("date", "affiliate"),
}
# View name -> the slice it shows.
SLICE_VIEWS = {
    "rejection_reasons": "rejections",
    "delivery_outcomes": "deliveries",
    "affiliate_postback_outcomes": "affiliate-postbacks",
}

# A view has no parameters: the slices' own, bound to "all of it, in UTC".
_EVERYTHING = {
    "$tz": "'UTC'",
    "$start": "'-infinity'::TIMESTAMPTZ",
    "$end": "'infinity'::TIMESTAMPTZ",
    "$offers": "[]::INTEGER[]",
    "$affiliates": "[]::INTEGER[]",
    "$advertisers": "[]::INTEGER[]",
    "$statuses": "[]::INTEGER[]",
}


def _unparameterised(query: str) -> str:
    for name, value in _EVERYTHING.items():
        query = query.replace(name, value)
    if "$" in query:
        raise ValueError(f"a view query kept a parameter the views cannot bind: {query}")
    return query


def create_views(con: duckdb.DuckDBPyConnection) -> None:
    for name, dimensions in STATS_VIEWS.items():
        query = _unparameterised(stats_query(dimensions, (), exact=False))
        order = ", ".join(f"{i + 1}" for i in range(len(dimensions) + 1))
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {query} ORDER BY {order}")
    for name, slice_name in SLICE_VIEWS.items():
        body = _unparameterised(SLICES[slice_name].query(SliceOptions(), False))
        con.execute(f"CREATE OR REPLACE VIEW {name} AS {body}")
