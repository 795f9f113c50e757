"""The worker's root logger stays at its log level (app/compat/faust_worker.py)."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from pathlib import Path

import faust
import pytest

from app.compat import installed
from app.compat.faust_worker import LevelKeepingWorker
from app.settings import Settings
from app.streams.faust_app import Role, build_faust_app


@pytest.fixture
def records_built() -> Iterator[list[logging.LogRecord]]:
    """Every LogRecord built meanwhile; the root logger as it was, afterwards."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    factory = logging.getLogRecordFactory()
    built: list[logging.LogRecord] = []

    def counted(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        built.append(record)
        return record

    logging.setLogRecordFactory(counted)
    try:
        yield built
    finally:
        logging.setLogRecordFactory(factory)
        root.setLevel(level)
        root.handlers[:] = handlers


def _worker_set_up(worker_class: type[faust.Worker], loglevel: str) -> None:
    """What a worker started with ``--loglevel`` does to logging before it starts the app."""
    app = faust.App("worker-log-level", broker="kafka://127.0.0.1:9", store="memory://")
    # Not a terminal: the spinner draws nothing (it would on a terminal).
    worker = worker_class(app, loglevel=loglevel, stdout=io.StringIO(), redirect_stdouts=False)
    worker._setup_logging()


async def test_at_loglevel_warn_a_debug_line_builds_no_log_record(
    records_built: list[logging.LogRecord],
) -> None:
    """Faust 0.15.3 sets the root logger to DEBUG for its spinner, so each of the debug
    lines Faust and aiokafka write per record sent builds a LogRecord for nothing. The
    first half pins Faust's behaviour: when it fails, Faust changed and the patch can go."""
    log = logging.getLogger("imptrack.consumer")
    _worker_set_up(faust.Worker, "warn")
    assert logging.getLogger().level == logging.DEBUG
    log.debug("committing %s", {"impressions:0": 8})
    assert len(records_built) == 1

    records_built.clear()
    _worker_set_up(LevelKeepingWorker, "warn")
    assert logging.getLogger().level == logging.WARNING
    log.debug("committing %s", {"impressions:0": 8})
    assert records_built == []
    log.warning("still written")
    assert [r.getMessage() for r in records_built] == ["still written"]


@pytest.mark.parametrize("loglevel", ["info", "debug"])
async def test_below_warn_the_root_logger_is_at_the_level_asked_for(
    loglevel: str, records_built: list[logging.LogRecord]
) -> None:
    """Faust drops its spinner there; the patch changes nothing."""
    _worker_set_up(LevelKeepingWorker, loglevel)
    assert logging.getLevelName(logging.getLogger().level) == loglevel.upper()


def test_the_worker_and_the_forwarder_start_their_worker_with_the_patch(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``imptrack worker`` and ``imptrack forwarder`` run Faust's CLI, which starts the
    app's ``Worker`` class."""
    monkeypatch.setattr(installed, "_kept", None)
    settings = Settings.from_env({"IMPTRACK_HOME": str(tmp_path)})
    app = build_faust_app(settings, Role("worker-class", tmp_path, 16066, "at_least_once"))
    assert app.conf.Worker is LevelKeepingWorker
