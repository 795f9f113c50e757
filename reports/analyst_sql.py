"""``imptrack sql``: a query of the analysts' DuckDB snapshot, with no DuckDB CLI to
install. It opens the snapshot the exporter publishes (``DATA_DIR/imptrack.duckdb``,
docs/REPORTING.md) read-only, so it never disturbs the exporter, and prints the
answer in the report formats."""

from __future__ import annotations

from pathlib import Path

import duckdb

from app.exceptions import ReportError, ReportUnavailable
from reports.slices import SliceResult


def run_sql(snapshot: Path, query: str) -> SliceResult:
    """``query``'s answer from the snapshot at ``snapshot``, or a ReportError saying
    what was wrong (no snapshot yet, DuckDB's own message for the query)."""
    if not query.strip():
        raise ReportError("give a query, e.g. imptrack sql 'select * from daily'")
    if not snapshot.is_file():
        raise ReportUnavailable(
            f"there is no DuckDB snapshot at {snapshot} yet: start the stack (`make up`); "
            "the exporter publishes one every REPORT_SNAPSHOT_SECONDS"
        )
    try:
        con = duckdb.connect(str(snapshot), read_only=True)
    except duckdb.Error as exc:
        raise ReportUnavailable(f"cannot open {snapshot}: {exc}") from None
    try:
        relation = con.sql(query)
        if relation is None:  # a statement with no answer (SET, PRAGMA ...)
            return SliceResult([], [])
        return SliceResult.from_arrow(relation.to_arrow_table())
    except duckdb.Error as exc:
        # DuckDB's message names what is wrong ("Table with name dialy does not
        # exist! Did you mean "daily"?"); the snapshot is read-only, so a write says so.
        raise ReportError(f"the query failed: {exc}") from None
    finally:
        con.close()
