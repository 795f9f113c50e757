"""The worker's links server: ``GET /links`` answers which impression a click
followed, from the links index of the partitions this worker holds
(app.attribution.click_links).

It runs on a thread with an event loop of its own, so a click's redirect waits
for a RocksDB read, not behind a batch the agents are working through on the
worker's loop. It answers only for partitions whose table is ready here (assigned,
recovery done), and announces them in Redis for the edge
(app.attribution.link_owners).

``GET /links?partition=P&offer_id=O&pid=A`` with ``aimp_id``, ``imp_id`` or both:

- 200 ``{"how": "aimp_id" | "imp_id" | "none", "aimp_id": ..., "imp_id": ...}``:
  the impression of offer O by affiliate A named by ``aimp_id``, else the latest
  carrying ``imp_id``; the edge checks the offer's view-through window;
- 400 with what was wrong with the query;
- 421 when partition P is not ready on this worker.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

from aiohttp import web

from app.attribution.click_links import (
    NOT_FOUND,
    Link,
    Read,
    linked_by_aimp_id,
    linked_by_imp_id,
)
from app.ids import MAX_PARTITIONS, is_valid_id

log = logging.getLogger("imptrack.links")

ReadsOf = Callable[[int], Read | None]
"""Reads of one partition's links index, or None when it is not ready here."""


class LinksQueryError(ValueError):
    """A links query that names no partition, offer, affiliate or impression."""


def _whole(query: dict[str, str], name: str, below: int | None = None) -> int:
    raw = query.get(name)
    if raw is None or not raw.isdigit() or (below is not None and int(raw) >= below):
        limit = f" below {below}" if below is not None else ""
        raise LinksQueryError(f"{name} must be a whole number{limit}, not {raw!r}")
    return int(raw)


def answer(query: dict[str, str], reads_of: ReadsOf) -> tuple[int, dict[str, str | None]]:
    """The status and body :func:`links` answers ``query`` with."""
    try:
        partition = _whole(query, "partition", MAX_PARTITIONS)
        offer_id, pid = _whole(query, "offer_id"), _whole(query, "pid")
        aimp_id, imp_id = query.get("aimp_id") or None, query.get("imp_id") or None
        if aimp_id is None and imp_id is None:
            raise LinksQueryError("name the impression: aimp_id, imp_id or both")
    except LinksQueryError as exc:
        return 400, {"error": str(exc)}
    read = reads_of(partition)
    if read is None:
        return 421, {"error": f"partition {partition} of impressions is not ready on this worker"}
    link = None
    if aimp_id is not None and is_valid_id(aimp_id):
        link = linked_by_aimp_id(read, offer_id, pid, aimp_id)
    if link is None and imp_id is not None:
        link = linked_by_imp_id(read, offer_id, pid, imp_id)
    link = link or Link(NOT_FOUND)
    return 200, {"how": link.how, "aimp_id": link.aimp_id, "imp_id": link.imp_id}


class LinksServer:
    """``GET /links`` on ``host:port``, served from a thread of its own."""

    def __init__(self, reads_of: ReadsOf, host: str, port: int) -> None:
        self._reads_of = reads_of
        self.host, self.port = host, port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def _links(self, request: web.Request) -> web.Response:
        status, body = answer(dict(request.query), self._reads_of)
        return web.json_response(body, status=status)

    async def _serve(self) -> None:
        app = web.Application()
        app.router.add_get("/links", self._links)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            await web.TCPSite(runner, self.host, self.port, reuse_address=True).start()
        except BaseException:
            await runner.cleanup()
            raise
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        try:
            await self._stop.wait()
        finally:
            await runner.cleanup()

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # told to start()'s caller, which waits for it
            self._failure = exc
            self._started.set()

    def start(self, timeout: float = 10.0) -> None:
        """Serve; raise what kept it from listening (a port taken) if it cannot."""
        self._thread = threading.Thread(target=self._run, name="links-server", daemon=True)
        self._thread.start()
        if not self._started.wait(timeout):
            raise RuntimeError(f"the links server did not start on {self.url} in {timeout} s")
        if self._failure is not None:
            raise RuntimeError(f"the links server cannot serve on {self.url}: {self._failure}")
        log.info("links server on %s", self.url)

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)
