"""`imptrack sql`: a query of the analysts' snapshot, its answer or DuckDB's reason."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from app.exceptions import ReportError
from reports.analyst_sql import run_sql


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "data" / "imptrack.duckdb"
    path.parent.mkdir()
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE daily AS SELECT DATE '2026-03-01' AS date, 7 AS impressions")
    con.close()
    return path


def test_a_query_answers_from_the_snapshot(snapshot: Path) -> None:
    result = run_sql(snapshot, "select date, impressions from daily")
    assert result.columns == ["date", "impressions"]
    assert [tuple(map(str, row)) for row in result.rows] == [("2026-03-01", "7")]


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("select * from dialy", 'Did you mean "daily"'),
        ("delete from daily", "read-only"),
        ("selec 1", "syntax error"),
        ("  ", "give a query"),
    ],
)
def test_a_bad_query_gets_duckdbs_reason(snapshot: Path, query: str, says: str) -> None:
    with pytest.raises(ReportError, match=says):
        run_sql(snapshot, query)


def test_no_snapshot_yet_says_how_to_get_one(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match=r"no DuckDB snapshot at .* yet: start the stack"):
        run_sql(tmp_path / "imptrack.duckdb", "select 1")


def test_the_command_prints_csv_and_exits_2_on_a_bad_query(snapshot: Path) -> None:
    home = snapshot.parent.parent
    env = {**os.environ, "IMPTRACK_HOME": str(home)}
    command = [sys.executable, "-m", "app.cli", "sql"]
    done = subprocess.run(
        [*command, "select impressions from daily", "--format", "csv"],
        capture_output=True, text=True, env=env, check=False,
    )  # fmt: skip
    assert (done.returncode, done.stdout) == (0, "impressions\n7\n"), done.stderr
    bad = subprocess.run(
        [*command, "select * from nowhere"], capture_output=True, text=True, env=env, check=False
    )
    assert bad.returncode == 2
    assert bad.stderr.startswith("imptrack: the query failed: Catalog Error")
    assert "Traceback" not in bad.stderr
