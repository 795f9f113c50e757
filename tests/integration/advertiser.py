"""A real HTTP server playing the advertiser's impressions endpoint, for the
forwarding tests. It runs on a thread with its own event loop, so it keeps
answering while a test blocks (e.g. in ``RunningStack.settle``)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str  # the raw path, exactly as it arrived
    query: str  # the raw query string, exactly as it arrived
    params: dict[str, list[str]]
    status: int  # what the sink answered
    at: float  # time.monotonic()

    @property
    def aimp_id(self) -> str:
        return self.params.get("a", [""])[0]


class AdvertiserSink:
    """Answers by path: ``/ok`` 200; ``/flaky`` 503 to an impression's first request
    (``a`` = aimp_id), then 200; ``/gone`` 404; ``/broken`` 500; ``/down`` 503 while
    :attr:`down` is set, else 200; ``/moved`` redirects to ``?to=`` (302)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = 0
        self.received: list[Received] = []
        self.down = threading.Event()
        self._seen: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> AdvertiserSink:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_get("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]  # as sent, not decoded
        params: dict[str, list[str]] = {}
        for key, value in request.query.items():
            params.setdefault(key, []).append(value)
        with self._lock:
            aimp_id = params.get("a", [""])[0]
            self._seen[(path, aimp_id)] += 1
            nth = self._seen[(path, aimp_id)]
        status = 200
        if path.startswith("/moved"):
            status = 302
        elif path.startswith("/flaky"):
            status = 503 if nth == 1 else 200
        elif path.startswith("/gone"):
            status = 404
        elif path.startswith("/broken"):
            status = 500
        elif path.startswith("/down") and self.down.is_set():
            status = 503
        with self._lock:
            self.received.append(
                Received(path, request.query_string, params, status, time.monotonic())
            )
        if status == 302:
            raise web.HTTPFound(request.query.get("to", "/ok"))
        return web.Response(status=status, body=b"ok")

    # -- what arrived ------------------------------------------------------------

    def requests(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def delivered(self, path: str) -> Counter[str]:
        """aimp_id -> requests answered 2xx, on ``path``."""
        return Counter(r.aimp_id for r in self.requests(path) if 200 <= r.status < 300)
