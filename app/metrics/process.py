"""What each process costs the machine: resident memory and CPU time.

prometheus-client's own process collector reports these for a single process; it
is not part of a multiprocess registry, so imptrack keeps its own, the same for
every process, labelled by the process's role (and by pid in multiprocess mode).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
from collections.abc import AsyncIterator

from prometheus_client import Counter, Gauge

SAMPLE_SECONDS = 5.0
"""How often a process that may not be the one scraped records its own figures."""

RESIDENT_MEMORY = Gauge(
    "imptrack_process_resident_memory_bytes",
    "Resident memory of the process.",
    ["process"],
    multiprocess_mode="liveall",
)
CPU = Counter("imptrack_process_cpu_seconds_total", "CPU time the process used.", ["process"])

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def _resident_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        # Not Linux: the peak instead (kilobytes on Linux, bytes on macOS).
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class ProcessMetrics:
    """Records this process's memory and CPU under its role's name."""

    def __init__(self, role: str) -> None:
        self.role = role
        self._memory = RESIDENT_MEMORY.labels(role)
        self._cpu = CPU.labels(role)
        self._counted = 0.0

    def sample(self) -> None:
        self._memory.set(_resident_bytes())
        used = _cpu_seconds()
        self._cpu.inc(max(0.0, used - self._counted))
        self._counted = used

    async def sampling(self) -> None:
        """Sample every SAMPLE_SECONDS until cancelled."""
        while True:
            self.sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    @contextlib.asynccontextmanager
    async def sampled(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.sampling(), name=f"{self.role}-process-metrics")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
