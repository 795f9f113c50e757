"""Turning exported events into Arrow batches DuckDB inserts column by column."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from app.records import SUB_FIELDS

IMPRESSION_SCHEMA = pa.schema(
    [
        ("aimp_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("imp_id", pa.string()),
        *[(name, pa.string()) for name in SUB_FIELDS],
        ("ua", pa.string()),
        ("ip", pa.string()),
    ]
)
_TEXT_FIELDS = ("imp_id", *SUB_FIELDS, "ua", "ip")

REJECTION_SCHEMA = pa.schema(
    [
        ("aimp_id", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("reason", pa.string()),
        ("imp_id", pa.string()),
    ]
)


def impressions_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``impressions`` table; ``ts`` is read off the ``aimp_id``."""
    aimp_ids = [e["aimp_id"] for e in events]
    columns: dict[str, list[Any]] = {
        "aimp_id": aimp_ids,
        "ts": [int(a[:12], 16) for a in aimp_ids],
        "offer_id": [e["offer_id"] for e in events],
        "pid": [e["pid"] for e in events],
    }
    for name in _TEXT_FIELDS:
        columns[name] = [e.get(name) for e in events]
    return pa.Table.from_pydict(columns, schema=IMPRESSION_SCHEMA)


def rejections_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``rejections`` table; ``ts`` is read off the ``aimp_id``."""
    aimp_ids = [e["aimp_id"] for e in events]
    columns = {
        "aimp_id": aimp_ids,
        "ts": [int(a[:12], 16) for a in aimp_ids],
        "offer_id": [e["offer_id"] for e in events],
        "pid": [e["pid"] for e in events],
        "reason": [e["reason"] for e in events],
        "imp_id": [e.get("imp_id") for e in events],
    }
    return pa.Table.from_pydict(columns, schema=REJECTION_SCHEMA)


BATCH_BUILDERS: dict[str, Callable[[list[dict[str, Any]]], pa.Table]] = {
    "impressions": impressions_batch,
    "rejections": rejections_batch,
}
"""Each exported kind's column builder, in the order a batch stores them."""
