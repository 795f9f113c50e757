"""One log line, not a traceback, for a request aiohttp could not parse.

aiohttp answers such a request with a 400 itself, before any handler runs, and logs
it at ERROR with a full traceback: hostile or broken clients flood the edge's log,
and the operator reading it at 3 a.m. sees errors where nothing went wrong on our
side. This filter turns those records into one WARNING line naming the client and
aiohttp's reason. Only the reason's first line is kept: the rest quotes the raw
request line or header, which may carry anything, an API key included.
"""

from __future__ import annotations

import logging

from aiohttp.http_exceptions import HttpProcessingError

LOGGER = "aiohttp.server"


def _parse_error(exc: BaseException | None) -> HttpProcessingError | None:
    """The HTTP parse error in ``exc``'s chain (a body aiohttp could not decode is
    logged as the payload error it caused), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, HttpProcessingError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


class MalformedRequestLog(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = _parse_error(record.exc_info[1] if record.exc_info else None)
        if exc is not None:
            client = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
            reason = (exc.message.strip().splitlines() or [""])[0].rstrip(":")
            record.msg = "refused a malformed request from %s: %d %s (%s)"
            record.args = (client, exc.code, reason, type(exc).__name__)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install() -> None:
    logging.getLogger(LOGGER).addFilter(MalformedRequestLog())
