"""The worker's links server: it answers which impression a click followed, from the
links index of the partitions this worker holds (app.attribution.click_links), in
the line protocol of app.attribution.links_wire.

It runs on a thread with an event loop of its own, so a click's redirect waits for
a RocksDB read, not behind a batch the agents are working through on the worker's
loop. It answers only for partitions whose table is ready here (assigned, recovery
done); app/streams/worker_links.py announces them in Redis for the edge.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import cast

from app.attribution.links_wire import BAD, MAX_LINE_BYTES, ReadsOf, answer_line, complete_lines
from app.ids import IdSeal

log = logging.getLogger("imptrack.links")


class _Connection(asyncio.Protocol):
    """One edge process's connection: every complete line that arrived is answered,
    all of them in one write."""

    def __init__(self, reads_of: ReadsOf, seal: IdSeal) -> None:
        self._reads_of = reads_of
        self._seal = seal
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        lines, self._buffer = complete_lines(self._buffer, data)
        answers = [answer_line(line, self._reads_of, self._seal) for line in lines if line]
        if len(self._buffer) > MAX_LINE_BYTES:
            answers.append(
                b'[null, "%s", "an ask longer than %d bytes"]\n' % (BAD.encode(), MAX_LINE_BYTES)
            )
            self._transport.write(b"".join(answers))
            self._transport.close()
            return
        if answers:
            self._transport.write(b"".join(answers))


class LinksServer:
    """The line protocol on ``host:port``, served from a thread of its own."""

    def __init__(self, reads_of: ReadsOf, seal: IdSeal, host: str, port: int) -> None:
        self._reads_of = reads_of
        self._seal = seal
        self.host, self.port = host, port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._failure: BaseException | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: _Connection(self._reads_of, self._seal),
            self.host,
            self.port,
            reuse_address=True,
        )
        self._loop, self._stop = loop, asyncio.Event()
        self._started.set()
        async with server:
            await self._stop.wait()

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
            raise RuntimeError(f"the links server did not start on {self.address} in {timeout} s")
        if self._failure is not None:
            raise RuntimeError(f"the links server cannot serve on {self.address}: {self._failure}")
        log.info("links server on %s", self.address)

    def stop(self) -> None:
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout=5)
