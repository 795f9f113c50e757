"""The end-to-end delays the exporter reports (reports/freshness.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa
import pytest

from reports import freshness
from reports.freshness import ExportDelays

TS = pa.timestamp("ms", tz="UTC")


def _accepted(*ms: int) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(list(ms), pa.int64()).cast(TS)])


def test_an_empty_window_says_so() -> None:
    assert ExportDelays().summary() == {
        "window_s": 60.0,
        "count": 0,
        "p50_ms": None,
        "p99_ms": None,
        "max_ms": None,
    }


def test_each_impression_counts_its_own_delay() -> None:
    delays = ExportDelays()
    now = 1_800_000_000_000
    # 99 impressions 100 ms old and one 5 s old: p99 is the 99th of 100, the max the 100th.
    delays.committed(_accepted(*([now - 100] * 98)), now_ms=now)
    delays.committed(_accepted(now - 300, now - 5_000), now_ms=now)
    assert delays.summary() == {
        "window_s": 60.0,
        "count": 100,
        "p50_ms": 100,
        "p99_ms": 300,
        "max_ms": 5_000,
    }


def test_a_clock_that_stepped_back_gives_no_negative_delay() -> None:
    delays = ExportDelays()
    delays.committed(_accepted(2_000), now_ms=1_000)
    assert delays.summary()["max_ms"] == 0


def test_the_window_forgets_what_is_older(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1_000.0]
    monkeypatch.setattr(freshness.time, "monotonic", lambda: clock[0])
    delays = ExportDelays(window_s=60)
    delays.committed(_accepted(0), now_ms=9_000)
    clock[0] += 30
    delays.committed(_accepted(0), now_ms=1_000)
    assert delays.summary()["count"] == 2
    clock[0] += 31
    assert delays.summary() == {
        "window_s": 60,
        "count": 1,
        "p50_ms": 1_000,
        "p99_ms": 1_000,
        "max_ms": 1_000,
    }


def test_real_timestamps_from_the_exporters_columns() -> None:
    delays = ExportDelays()
    accepted = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
    column = pa.chunked_array([pa.array([accepted], TS)])
    delays.committed(column, now_ms=int(accepted.timestamp() * 1000) + 750)
    assert delays.summary()["p99_ms"] == 750
