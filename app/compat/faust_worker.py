"""Faust's worker, leaving the root logger at the level it was started with.

At ``--loglevel warn`` (or error, crit) Faust 0.15.3 keeps its startup spinner, and to
turn it on every log record it sets the root logger to DEBUG
(``faust.Worker._setup_spinner_handler``, faust/worker.py) and leaves it there once
the spinner has stopped. Every ``log.debug`` of every library then builds a LogRecord
(with its caller's frame looked up) and hands it to handlers that drop it: Faust logs
one per record sent (``Topic.publish_message``), aiokafka one per send and one per
request. Issue 23 measured it at 15 % of a Faust event's time (py-spy). At info or
debug Faust drops the spinner and the root keeps the level asked for.

The worker below sets the root logger back to the level it was started with. The
spinner (only drawn on a terminal) still turns, on the records at that level.

Written for faust-streaming 0.15.3 (app/compat/patches.py, ROOT_LOG_LEVEL). No
upstream issue was found (faust-streaming/faust#495 is about the spinner's output at
warn, not its level). Test: tests/unit/compat/test_faust_worker.py.
"""

from __future__ import annotations

import logging
from typing import Any

import faust


class LevelKeepingWorker(faust.Worker):
    """``faust.Worker`` whose root logger stays at the worker's log level, and whose
    logging takes the app's ``logging_config`` (app/logs.py: JSON lines) when it has
    one."""

    def __init__(self, app: faust.App, *services: Any, **kwargs: Any) -> None:
        if kwargs.get("logging_config") is None:
            kwargs["logging_config"] = getattr(app, "logging_config", None)
        super().__init__(app, *services, **kwargs)

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        super().on_setup_root_logger(logger, level)
        # Level 0: no level was given, and the root keeps whatever it has.
        if level and logger.level < level:
            logger.setLevel(level)
