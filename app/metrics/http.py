"""Requests an aiohttp process answered, by endpoint and status, and how long each
took: for the edge, the pixel's, the click's and the postback verdict's latency."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Counter, Histogram

from app.metrics.exposition import CONTENT_TYPE, exposition

REQUESTS = Counter(
    "imptrack_http_requests_total", "HTTP requests answered.", ["endpoint", "status"]
)
LATENCY = Histogram(
    "imptrack_http_request_duration_seconds",
    "Time from a request's arrival to its answer (a postback's includes its verdict).",
    ["endpoint"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
UNMATCHED = "unmatched"
"""The endpoint of a request no route took (a 404 or 405): paths are not labels."""

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def endpoint(request: web.Request) -> str:
    """The route's path pattern (``/api/v1/offers/{offer_id}``), never the path."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def measured(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        name = endpoint(request)
        REQUESTS.labels(name, str(status)).inc()
        LATENCY.labels(name).observe(time.perf_counter() - started)


async def metrics_page(request: web.Request) -> web.Response:
    """``GET /metrics`` in Prometheus's text format."""
    return web.Response(body=exposition(), headers={"Content-Type": CONTENT_TYPE})
