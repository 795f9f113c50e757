"""Printing a slice as a terminal table, CSV, JSON or Parquet."""

from __future__ import annotations

import csv
import io
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from reports.slices import SliceResult

FORMATS = ("table", "csv", "json", "parquet")
BINARY_FORMATS = frozenset({"parquet"})
MEDIA_TYPES = {
    "table": "text/plain",
    "csv": "text/csv",
    "json": "application/json",
    "parquet": "application/vnd.apache.parquet",
}


def plain_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def as_table(result: SliceResult) -> str:
    cells = [result.columns, *[[plain_value(v) for v in row] for row in result.rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(result.columns))]
    numeric = [
        all(isinstance(row[i], int | float | Decimal) for row in result.rows if row[i] is not None)
        and bool(result.rows)
        for i in range(len(result.columns))
    ]

    def line(row: list[str]) -> str:
        return "  ".join(
            cell.rjust(w) if num else cell.ljust(w)
            for cell, w, num in zip(row, widths, numeric, strict=True)
        ).rstrip()

    rule = "  ".join("-" * w for w in widths)
    body = [line(row) for row in cells[1:]] or ["(no rows)"]
    return "\n".join([line(cells[0]), rule, *body])


def as_csv(result: SliceResult) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(result.columns)
    writer.writerows([[plain_value(v) for v in row] for row in result.rows])
    return out.getvalue().rstrip("\n")


def as_json(result: SliceResult) -> str:
    return orjson.dumps(result.as_dicts(), default=plain_value, option=orjson.OPT_INDENT_2).decode()


def render(result: SliceResult, fmt: str) -> str:
    return {"table": as_table, "csv": as_csv, "json": as_json}[fmt](result)


def as_parquet(result: SliceResult) -> bytes:
    """The slice as a Parquet file, its columns typed as in DuckDB (dates, decimals)."""
    out = io.BytesIO()
    pq.write_table(result.to_arrow(), out)
    return out.getvalue()


def render_bytes(result: SliceResult, fmt: str) -> bytes:
    """Any format, as the bytes of a file."""
    if fmt == "parquet":
        return as_parquet(result)
    return (render(result, fmt) + "\n").encode()


def as_arrow_stream(result: SliceResult) -> bytes:
    """The slice as an Arrow IPC stream: how the exporter hands slices to the CLI
    without losing their types."""
    table = result.to_arrow()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def from_arrow_stream(body: bytes) -> SliceResult:
    return SliceResult.from_arrow(pa.ipc.open_stream(body).read_all())
