"""A real HTTP server on this machine standing in for an advertiser's impressions
endpoint: the demo forwards to it, and the forwarding tests use it as the sink.

It runs on a thread with its own event loop, so it keeps answering while the
caller blocks, and records every request exactly as it arrived.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web


@dataclass(frozen=True)
class Received:
    path: str  # the raw path, exactly as it arrived
    query: str  # the raw query string
    params: dict[str, list[str]]
    status: int  # what the advertiser answered
    at: float  # time.monotonic()
    peer: tuple[str, int]  # the client's address: one per connection

    @property
    def aimp_id(self) -> str:
        """The ``a`` parameter: the demo and the tests put ``{aimp_id}`` there."""
        return self.params.get("a", [""])[0]


Answer = Callable[[str, dict[str, list[str]], int], int]
"""(raw path, params, how many times this path and aimp_id were asked) -> HTTP status;
302 redirects to the ``to`` parameter (or, without one, to the same URL)."""


class LocalAdvertiser:
    def __init__(self, answer: Answer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.answer = answer
        self.host = host
        self.port = port
        self.received: list[Received] = []
        self._asked: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def start(self) -> LocalAdvertiser:
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
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.raw_path.split("?", 1)[0]
        params: dict[str, list[str]] = {}
        for key, value in request.query.items():
            params.setdefault(key, []).append(value)
        with self._lock:
            asked_for = (path, params.get("a", [""])[0])
            self._asked[asked_for] += 1
            status = self.answer(path, params, self._asked[asked_for])
            self.received.append(
                Received(
                    path,
                    request.query_string,
                    params,
                    status,
                    time.monotonic(),
                    request.transport.get_extra_info("peername")[:2]
                    if request.transport
                    else ("", 0),
                )
            )
        if status == 302:
            # Without a target, back to itself: a redirect loop.
            raise web.HTTPFound(request.query.get("to", str(request.rel_url)))
        return web.Response(status=status, body=b"ok")

    def requests(self, path: str | None = None) -> list[Received]:
        with self._lock:
            return [r for r in self.received if path is None or r.path == path]

    def delivered(self, path: str | None = None) -> Counter[str]:
        """aimp_id -> requests answered 2xx (on ``path``, or anywhere)."""
        return Counter(r.aimp_id for r in self.requests(path) if 200 <= r.status < 300)
