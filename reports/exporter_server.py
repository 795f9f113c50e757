"""The exporter process: the export loop plus a small HTTP server for operators.

While the exporter runs it holds DuckDB's write lock, so ``/reports/SLICE`` lets
``imptrack report`` read through the exporter's own connection meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator

import orjson
import uvloop
from aiohttp import web

from app.broker_holes import guard_embedded_broker
from app.exceptions import ReportError
from app.settings import Settings
from reports.exporter import Exporter
from reports.formatting import plain_value
from reports.slices import SLICES, SliceOptions, date_range

EXPORTER = web.AppKey("exporter", Exporter)
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


async def report(request: web.Request) -> web.Response:
    name = request.match_info["slice"]
    if name not in SLICES:
        return web.json_response(
            {"error": f"unknown slice {name!r}; known: {', '.join(sorted(SLICES))}"}, status=404
        )
    q = request.query
    try:
        period = date_range(q.get("from"), q.get("to"), q.get("tz", "UTC"))
    except ReportError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    options = SliceOptions(errors_only=q.get("errors") == "1")
    result = await request.app[EXPORTER].query(SLICES[name], period, options)
    body = orjson.dumps({"columns": result.columns, "rows": result.rows}, default=plain_value)
    return web.Response(body=body, content_type="application/json")


def create_exporter_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[EXPORTER] = Exporter(settings)
    app.cleanup_ctx.append(_export_ctx)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/reports/{slice}", report)
    return app


def run_exporter(settings: Settings) -> None:
    guard_embedded_broker(settings.kafka_broker is None)
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        create_exporter_app(settings),
        host="127.0.0.1",
        port=settings.exporter_port,
        access_log=None,
        print=None,
        shutdown_timeout=5,
    )
