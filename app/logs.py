"""How a process logs: readable lines for people by default, or with
``LOG_FORMAT=json`` one JSON object a line for machines, with the process, the level,
the logger, the event (the message) and the imptrack IDs it names as fields."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import orjson

from app.settings import Settings

TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"
_ID = re.compile(r"\b[0-9a-f]{24}\b")


class JsonFormatter(logging.Formatter):
    """One JSON object a record: ``ts`` (ISO 8601, UTC, ms), ``level``, ``process``
    (the imptrack process: edge, worker...), ``logger``, ``event``, ``ids`` (every
    24-hex imptrack ID the event names, in order) and ``error`` (a traceback)."""

    def __init__(self, process: str) -> None:
        super().__init__()
        self.process = process

    def format(self, record: logging.LogRecord) -> str:
        event = record.getMessage()
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "process": self.process,
            "logger": record.name,
            "event": event,
        }
        ids = _ID.findall(event)
        if ids:
            entry["ids"] = list(dict.fromkeys(ids))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def formatter(settings: Settings, process: str) -> logging.Formatter:
    if settings.log_format == "json":
        return JsonFormatter(process)
    return logging.Formatter(TEXT_FORMAT)


def configure(settings: Settings, process: str) -> None:
    """The root logger's one handler (stderr) and level, for ``process``."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(settings, process))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())


def faust_logging_config(settings: Settings, process: str) -> dict[str, Any] | None:
    """What a Faust worker merges into the logging it sets up (mode.utils.logging
    ``setup_logging``): its stream handler's formatter made ours for json; None keeps
    Faust's own lines."""
    if settings.log_format != "json":
        return None
    ours = {"()": f"{JsonFormatter.__module__}.{JsonFormatter.__qualname__}", "process": process}
    return {"merge": True, "formatters": {"colored": ours, "default": ours}}
