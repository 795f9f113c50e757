"""How long an impression takes from the edge to DuckDB: the end-to-end delay.

Every recorded impression carries the millisecond the edge accepted it (its
``aimp_id``, hence its ``ts`` column). When the exporter has committed a batch to its
DuckDB file, ``now - ts`` of each impression in it is that impression's delay: the
edge's envelope, the worker, the exporter's fetch and batch, and the commit.
Analysts' queries read the published copy (reports.snapshot), which adds up to
``REPORT_SNAPSHOT_SECONDS`` more.

Kept exactly, for a sliding window: the delays of the last ``window_s`` seconds as
the Arrow arrays they were computed as (at 1,000 impressions/s and 60 s, 480 kB).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

WINDOW_SECONDS = 60.0


class ExportDelays:
    """The end-to-end delays of the impressions committed in the last ``window_s``."""

    def __init__(self, window_s: float = WINDOW_SECONDS) -> None:
        self.window_s = window_s
        self._batches: deque[tuple[float, pa.Array]] = deque()

    def committed(self, ts: pa.ChunkedArray | pa.Array, now_ms: int | None = None) -> None:
        """Impressions whose ``ts`` (accepted at the edge) were committed just now."""
        if len(ts) == 0:
            return
        now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        accepted = pc.cast(ts, pa.int64())
        if isinstance(accepted, pa.ChunkedArray):
            accepted = accepted.combine_chunks()
        # A clock stepping back could make a delay negative: it counts as none.
        delays = pc.max_element_wise(pc.subtract(pa.scalar(now_ms, pa.int64()), accepted), 0)
        self._batches.append((time.monotonic(), delays))
        self._forget_old()

    def _forget_old(self) -> None:
        horizon = time.monotonic() - self.window_s
        while self._batches and self._batches[0][0] < horizon:
            self._batches.popleft()

    def summary(self) -> dict[str, Any]:
        """Count, p50, p99 and max in ms over the window (None while it is empty)."""
        self._forget_old()
        window = {"window_s": self.window_s, "count": 0, "p50_ms": None, "p99_ms": None}
        if not self._batches:
            return window | {"max_ms": None}
        delays = pa.chunked_array([d for _, d in self._batches], pa.int64())
        # "lower": the nearest-rank percentile (of 100 delays, p99 is the 99th).
        p50, p99 = pc.quantile(delays, q=[0.5, 0.99], interpolation="lower").to_pylist()
        return window | {
            "count": len(delays),
            "p50_ms": int(p50),
            "p99_ms": int(p99),
            "max_ms": int(pc.max(delays).as_py()),
        }
