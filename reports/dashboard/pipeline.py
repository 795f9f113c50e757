"""The dashboard's pipeline panel: each process, each consumer group's lag and the
rates of the last minute, read as ``imptrack status`` reads them (app.ops.status:
the processes' ``/healthz`` and ``/metrics``), with the series of the last minutes
for the charts.

Readings are taken when the page asks, at most one per MIN_GAP_SECONDS whoever
asks, and kept in memory for KEPT_SECONDS: a dashboard nobody watches costs
nothing, and many open pages cost one reading per gap.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from app.ops import status
from app.ops.stack import Stack

MIN_GAP_SECONDS = 5.0
KEPT_SECONDS = 600.0
FIRST_GAP_SECONDS = 2.0
"""With no reading yet, two are taken this far apart, so the first page has rates."""


def _series(readings: list[status.Reading]) -> list[dict[str, Any]]:
    """Per reading after the first: its time, the rates since the reading before it
    (None across a counter reset) and each group's lag."""
    points = []
    for then, now in itertools.pairwise(readings):
        seconds = now.at - then.at
        rates: dict[str, float | None] = {}
        for name, total in status.RATES.items():
            grown = total(now.counters) - total(then.counters)
            rates[name] = round(grown / seconds, 2) if grown >= 0 and seconds > 0 else None
        points.append(
            {
                "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now.at)),
                "rates_per_second": rates,
                "lag": {group: int(behind) for group, behind in sorted(now.lag.items())},
            }
        )
    return points


class PipelineWatch:
    def __init__(self, stack: Stack) -> None:
        self._stack = stack
        self._readings: list[status.Reading] = []
        self._reading = asyncio.Lock()

    async def _read(self) -> status.Reading:
        # Blocking reads of the processes' pages, this exporter's own among them: in a
        # thread, so the event loop stays free to answer them.
        return await asyncio.to_thread(status.read, self._stack)

    async def latest(self) -> dict[str, Any]:
        """What :func:`app.ops.status.summary` shows, plus ``series``: the rates and
        lag of each reading kept, oldest first."""
        async with self._reading:
            if not self._readings:
                self._readings.append(await self._read())
                await asyncio.sleep(FIRST_GAP_SECONDS)
            if time.time() - self._readings[-1].at >= MIN_GAP_SECONDS:
                self._readings.append(await self._read())
            horizon = self._readings[-1].at - KEPT_SECONDS
            self._readings = [r for r in self._readings if r.at >= horizon]
            readings = list(self._readings)
        now = readings[-1]
        shown = status.summary(now, status.earlier(readings, now))
        return {**shown, "series": _series(readings)}
