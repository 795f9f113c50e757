"""Serving a process's metrics at ``/metrics``.

Most processes are one Python process each and serve prometheus-client's default
registry. Several edge processes share one port (``SO_REUSEPORT``), so a scrape
reaches any one of them: they keep their metrics in files under one directory
(prometheus-client's multiprocess mode, ``PROMETHEUS_MULTIPROC_DIR``), and whichever
is scraped merges them all.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

MULTIPROCESS_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client reads it when it is first imported: a process sets it before
it starts the processes that share it, which import it afresh (spawned)."""

CONTENT_TYPE = CONTENT_TYPE_LATEST


def share_between_processes(directory: Path) -> None:
    """Make the processes started from now on keep their metrics in ``directory``,
    emptied first (files of processes of an earlier run would be merged in)."""
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    os.environ[MULTIPROCESS_DIR_ENV] = str(directory)


def process_ended(pid: int) -> None:
    """Drop a stopped process's live gauges from the merged metrics."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]


def exposition() -> bytes:
    """This process's metrics (or all processes' sharing its directory) in
    Prometheus's text format."""
    if os.environ.get(MULTIPROCESS_DIR_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return bytes(generate_latest(registry))
    return bytes(generate_latest(REGISTRY))
