"""The soak's end-to-end figure (bench/soak_report.py): the exporter's per-minute
delays, and its snapshot copies beside them, over the judged window only."""

from __future__ import annotations

from typing import Any

from bench.soak_report import end_to_end_figures


def _sample(
    t: float, p50: int, p99: int, count: int = 1_000, phase: str = "soak", copy_s: float = 0.2
) -> Any:
    return {
        "t": 100.0 + t,
        "phase": phase,
        "snapshot_copy_s": copy_s,
        "end_to_end_ms": {
            "window_s": 60.0,
            "count": count,
            "p50_ms": p50,
            "p99_ms": p99,
            "max_ms": p99 + 10,
        },
    }


def test_the_worst_minute_of_the_judged_window_is_judged() -> None:
    raw = {
        "soak_started_t": 100.0,
        "samples": [
            _sample(-5, 50, 9_000, phase="capacity"),  # before the soak: not judged
            _sample(10, 60, 8_000, copy_s=5.0),  # warm-up, before the judged half of a 60 s soak
            _sample(30, 300, 900),
            _sample(40, 310, 1_500, copy_s=0.9),
            _sample(50, 320, 1_200),
            _sample(55, 330, 0, count=0),  # nothing exported that minute: left out
        ],
    }
    assert end_to_end_figures(raw, 60) == {
        # The snapshot's copies over the judged window too (the warm-up's 5 s left out).
        "snapshot_copy_s_max": 0.9,
        "snapshot_copy_s_median": 0.2,
        "p50_ms_median": 310,
        "p99_ms_median": 1_200,
        "p99_ms_worst_minute": 1_500,
        "max_ms": 1_510,
        "target_p99_ms": 2_000,
        "met": True,
    }
    raw["samples"].append(_sample(58, 330, 2_500))
    figures = end_to_end_figures(raw, 60)
    assert figures is not None and not figures["met"]


def test_no_figure_from_an_exporter_that_reported_none() -> None:
    raw = {"soak_started_t": 0.0, "samples": [{"t": 50.0, "phase": "soak"}]}
    assert end_to_end_figures(raw, 60) is None
