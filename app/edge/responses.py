"""JSON answers the edge gives when it cannot accept a request."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from app.exceptions import InvalidParameter

RETRY_AFTER_SECONDS = 1
NO_STORE: Mapping[str, str] = {"Cache-Control": "no-store"}
"""For answers that are each one event's (a click's redirect, a postback's verdict):
no cache may keep one and give it to the next request."""


def invalid_parameter(exc: InvalidParameter) -> web.Response:
    return web.json_response(
        {"error": f"{exc.parameter} {exc.problem}", "parameter": exc.parameter},
        status=exc.http_status,
    )


def unavailable(message: str) -> web.Response:
    return web.json_response(
        {"error": message},
        status=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def unreadable_body(exc: Exception) -> str:
    """Why aiohttp could not read a request body, without its "400, message:" prefix."""
    cause = exc.__cause__ if isinstance(exc, web.RequestPayloadError) else exc
    if isinstance(cause, HttpProcessingError):
        return cause.message
    return " ".join(str(exc).split())
