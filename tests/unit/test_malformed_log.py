"""A request aiohttp could not parse is one WARNING line, without the raw request."""

from __future__ import annotations

import logging
import sys

from aiohttp.http_exceptions import InvalidURLError, LineTooLong

from app.edge.malformed_log import MalformedRequestLog


def _record(exc: BaseException) -> logging.LogRecord:
    try:
        raise exc
    except BaseException:
        info = sys.exc_info()
    return logging.LogRecord(
        "aiohttp.server",
        logging.ERROR,
        __file__,
        1,
        "Error handling request from %s",
        ("203.0.113.9",),
        info,
    )


def test_a_parse_error_becomes_one_warning_line_without_the_raw_request() -> None:
    secret = "API-Key: 0123456789abcdef"
    record = _record(InvalidURLError(f"Invalid char in url query:\n\n    b'GET /imp?{secret}'"))
    assert MalformedRequestLog().filter(record)
    assert record.levelno == logging.WARNING and record.exc_info is None
    line = logging.Formatter().format(record)
    assert line == (
        "refused a malformed request from 203.0.113.9: 400 Invalid char in url query"
        " (InvalidURLError)"
    )
    assert secret not in line and "\n" not in line


def test_other_status_codes_are_kept() -> None:
    record = _record(LineTooLong("Got more than 8190 bytes when reading", "8190", "9000"))
    MalformedRequestLog().filter(record)
    assert "400 Got more than 8190 bytes" in logging.Formatter().format(record)


def test_other_errors_keep_their_traceback() -> None:
    record = _record(RuntimeError("a bug of ours"))
    assert MalformedRequestLog().filter(record)
    assert record.levelno == logging.ERROR and record.exc_info is not None


def test_a_body_that_cannot_be_decoded_is_one_line_too() -> None:
    """aiohttp logs it as the payload error the decoding error caused."""
    from aiohttp.http_exceptions import ContentEncodingError

    try:
        try:
            raise ContentEncodingError("Can not decode content-encoding: gzip")
        except ContentEncodingError as cause:
            raise OSError("payload error") from cause
    except OSError:
        info = sys.exc_info()
    record = logging.LogRecord(
        "aiohttp.server", logging.ERROR, __file__, 1, "Unhandled exception", (), info
    )
    MalformedRequestLog().filter(record)
    line = logging.Formatter().format(record)
    assert line == (
        "refused a malformed request from ?: 400 Can not decode content-encoding: gzip"
        " (ContentEncodingError)"
    )
