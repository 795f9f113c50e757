"""Turning exported events into Arrow batches DuckDB inserts column by column."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pyarrow as pa

from app.ids import id_ms
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


DELIVERY_SCHEMA = pa.schema(
    [
        ("aimp_id", pa.string()),
        ("impression_ts", pa.timestamp("ms", tz="UTC")),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("advertiser_id", pa.int32()),
        ("destination", pa.string()),
        ("url", pa.string()),
        ("attempt", pa.int16()),
        ("outcome", pa.string()),
        ("status", pa.int16()),
        ("error", pa.string()),
        ("latency_ms", pa.float64()),
    ]
)
_DELIVERY_FIELDS = (
    "offer_id",
    "pid",
    "advertiser_id",
    "destination",
    "url",
    "attempt",
    "outcome",
    "latency_ms",
)


CLICK_SCHEMA = pa.schema(
    [
        ("clickid", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("advertiser_id", pa.int32()),
        ("link", pa.string()),
        ("aimp_id", pa.string()),
        ("imp_id", pa.string()),
        *[(name, pa.string()) for name in SUB_FIELDS],
        ("ua", pa.string()),
        ("ip", pa.string()),
    ]
)
_CLICK_TEXT_FIELDS = ("aimp_id", *_TEXT_FIELDS)

CLICK_REJECTION_SCHEMA = pa.schema(
    [
        ("clickid", pa.string()),
        ("ts", pa.timestamp("ms", tz="UTC")),
        ("offer_id", pa.int32()),
        ("pid", pa.int32()),
        ("reason", pa.string()),
        ("imp_id", pa.string()),
    ]
)


def clicks_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``clicks`` table."""
    columns = _event_columns(events, "clickid")
    columns["advertiser_id"] = [e["advertiser_id"] for e in events]
    columns["link"] = [e["link"] for e in events]
    for name in _CLICK_TEXT_FIELDS:
        columns[name] = [e.get(name) for e in events]
    return pa.Table.from_pydict(columns, schema=CLICK_SCHEMA)


def click_rejections_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``click_rejections`` table."""
    columns = _event_columns(events, "clickid")
    columns["reason"] = [e["reason"] for e in events]
    columns["imp_id"] = [e.get("imp_id") for e in events]
    return pa.Table.from_pydict(columns, schema=CLICK_REJECTION_SCHEMA)


def _event_columns(events: list[dict[str, Any]], id_field: str = "aimp_id") -> dict[str, list[Any]]:
    """The columns every exported kind starts with: its time-ordered ID (``aimp_id``
    or ``clickid``), ``ts`` read off that ID, offer and affiliate."""
    ids = [e[id_field] for e in events]
    return {
        id_field: ids,
        "ts": [id_ms(i) for i in ids],
        "offer_id": [e["offer_id"] for e in events],
        "pid": [e["pid"] for e in events],
    }


def impressions_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``impressions`` table."""
    columns = _event_columns(events)
    for name in _TEXT_FIELDS:
        columns[name] = [e.get(name) for e in events]
    return pa.Table.from_pydict(columns, schema=IMPRESSION_SCHEMA)


def rejections_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``rejections`` table."""
    columns = _event_columns(events)
    columns["reason"] = [e["reason"] for e in events]
    columns["imp_id"] = [e.get("imp_id") for e in events]
    return pa.Table.from_pydict(columns, schema=REJECTION_SCHEMA)


def deliveries_batch(events: list[dict[str, Any]]) -> pa.Table:
    """Columns for the ``deliveries`` table: one row per attempt."""
    aimp_ids = [e["aimp_id"] for e in events]
    columns: dict[str, list[Any]] = {
        "aimp_id": aimp_ids,
        "impression_ts": [id_ms(a) for a in aimp_ids],
        "ts": [e["at_ms"] for e in events],
    }
    for name in _DELIVERY_FIELDS:
        columns[name] = [e[name] for e in events]
    columns["status"] = [e.get("status") for e in events]
    columns["error"] = [e.get("error") for e in events]
    return pa.Table.from_pydict(columns, schema=DELIVERY_SCHEMA)


BATCH_BUILDERS: dict[str, Callable[[list[dict[str, Any]]], pa.Table]] = {
    "impressions": impressions_batch,
    "rejections": rejections_batch,
    "deliveries": deliveries_batch,
    "clicks": clicks_batch,
    "click_rejections": click_rejections_batch,
}
"""Each exported kind's column builder, in the order a batch stores them."""
