"""The exporter process: the export loop plus a small HTTP server for operators.

While the exporter runs it holds DuckDB's write lock, so the stats API
(``GET /api/v1/stats/SLICE``, with the API key) answers slices from the exporter's
own connection; ``imptrack report`` reads through it meanwhile (as Arrow, so types
survive). Analysts read the snapshot the exporter publishes (reports/snapshot.py).
The dashboard (reports/dashboard) is served here too, and reads the stats API.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from decimal import Decimal

import orjson
import uvloop
from aiohttp import web

from app.compat import install
from app.edge.api_keys import ApiKeyGate
from app.edge.openapi import BASE_PATH, DOCUMENT_PATH, document_handler
from app.exceptions import ReportError
from app.installation_secrets import load_api_key
from app.metrics.http import measured, metrics_page
from app.metrics.process import ProcessMetrics
from app.ops.stack import Stack
from app.settings import Settings
from reports.dashboard.pipeline import PipelineWatch
from reports.dashboard.routes import SESSIONS, add_dashboard
from reports.dashboard.sessions import Sessions
from reports.exporter import Exporter
from reports.formatting import (
    BINARY_FORMATS,
    FORMATS,
    MEDIA_TYPES,
    as_arrow_stream,
    plain_value,
    render_bytes,
)
from reports.slice_request import SliceRequest
from reports.slices import run_slice
from reports.stats_openapi import stats_document

EXPORTER = web.AppKey("exporter", Exporter)
API_KEY_GATE = web.AppKey("api_key_gate", ApiKeyGate)
PROCESS = web.AppKey("process", ProcessMetrics)
API_FORMATS = (*FORMATS, "arrow")
log = logging.getLogger("imptrack.exporter")


async def _export_ctx(app: web.Application) -> AsyncIterator[None]:
    exporter = app[EXPORTER]
    await exporter.start()
    task = asyncio.create_task(exporter.run(), name="export-loop")

    def crash_on_failure(done: asyncio.Task[None]) -> None:
        if not done.cancelled() and done.exception() is not None:
            log.error("export loop failed", exc_info=done.exception())
            # A dead loop behind a healthy-looking port would hide the outage; exiting
            # hard is safe because nothing uncommitted in DuckDB is ever half-written.
            os._exit(70)

    task.add_done_callback(crash_on_failure)
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await exporter.stop()


async def healthz(request: web.Request) -> web.Response:
    return web.json_response(request.app[EXPORTER].status())


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics: rows stored, the export's lag and the DuckDB files read
    now, the stats API's requests, the process's costs."""
    request.app[PROCESS].sample()
    await request.app[EXPORTER].measure()
    return await metrics_page(request)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def stats(request: web.Request) -> web.Response:
    """``GET /api/v1/stats/SLICE``: a slice as JSON (default), CSV, Parquet, a text
    table or Arrow; the query names are those of ``imptrack report``."""
    # The dashboard's page reads the slices here with its session; anyone else
    # sends the key.
    if not (request.app[SESSIONS].holds(request) or request.app[API_KEY_GATE].admits(request)):
        return _error(401, "missing or wrong API-Key header")
    query = dict(request.query)
    fmt = query.pop("format", "json")
    if fmt not in API_FORMATS:
        return _error(400, f"format {fmt!r} is not one of {', '.join(API_FORMATS)}")
    repeated = [k for k in query if len(request.query.getall(k)) > 1]
    if repeated:
        return _error(400, f"parameter {repeated[0]!r} is given more than once")
    try:
        wanted = SliceRequest.parse(request.match_info["slice"], query)
        result = await request.app[EXPORTER].query(
            run_slice, wanted.name, wanted.period, wanted.options
        )
    except ReportError as exc:
        return _error(exc.http_status, str(exc))
    if fmt == "arrow":
        return web.Response(
            body=as_arrow_stream(result), content_type="application/vnd.apache.arrow.stream"
        )
    if fmt == "json":
        body = orjson.dumps(
            {
                "slice": wanted.name,
                "from": wanted.period.first.isoformat(),
                "to": wanted.period.last.isoformat(),
                "tz": wanted.period.tz,
                "columns": result.columns,
                "rows": result.as_dicts(),
            },
            default=_json_value,
        )
        return web.Response(body=body, content_type="application/json")
    response = web.Response(body=render_bytes(result, fmt), content_type=MEDIA_TYPES[fmt])
    if fmt in BINARY_FORMATS:
        response.headers["Content-Disposition"] = f'attachment; filename="{wanted.name}.{fmt}"'
    return response


def _json_value(value: object) -> object:
    # Money is DECIMAL(18, 4): a JSON number with those four places is exact enough
    # to read and sum; dates and times are ISO 8601.
    if isinstance(value, Decimal):
        return float(value)
    return plain_value(value)


def create_exporter_app(settings: Settings) -> web.Application:
    app = create_stats_app(Exporter(settings), load_api_key(settings))
    app.cleanup_ctx.append(_export_ctx)
    return app


def create_stats_app(exporter: Exporter, api_key: str) -> web.Application:
    """Health, the stats API and the dashboard, answered from ``exporter``'s
    connection; without the export loop, which :func:`create_exporter_app` adds."""
    app = web.Application(middlewares=[measured])
    gate = ApiKeyGate(api_key, log)
    app[EXPORTER] = exporter
    app[API_KEY_GATE] = gate
    app[PROCESS] = ProcessMetrics("exporter")
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/api/v1/stats/{slice}", stats)
    # Without the key, as the edge's: the API's description holds no data.
    app.router.add_get(BASE_PATH + DOCUMENT_PATH, document_handler(stats_document))
    add_dashboard(app, gate, Sessions(api_key), PipelineWatch(Stack(exporter.settings)))
    return app


def run_exporter(settings: Settings) -> None:
    install(settings)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        create_exporter_app(settings),
        host="127.0.0.1",
        port=settings.exporter_port,
        access_log=None,
        print=None,
        shutdown_timeout=5,
    )
