"""The advertiser the forwarding tests deliver to: a real local HTTP server."""

from __future__ import annotations

import threading

from demo.advertiser import LocalAdvertiser


class AdvertiserSink(LocalAdvertiser):
    """Answers by path: ``/ok...`` 200; ``/flaky`` 503 to an impression's first request
    (``a`` = aimp_id), then 200; ``/gone`` 404; ``/broken`` 500; ``/down`` 503 while
    :attr:`down` is set, else 200; ``/moved`` redirects to ``?to=``."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        super().__init__(self._answer, host)
        self.down = threading.Event()

    def _answer(self, path: str, params: dict[str, list[str]], asked: int) -> int:
        if path.startswith("/moved"):
            return 302
        if path.startswith("/flaky"):
            return 503 if asked == 1 else 200
        if path.startswith("/gone"):
            return 404
        if path.startswith("/broken"):
            return 500
        if path.startswith("/down") and self.down.is_set():
            return 503
        return 200

    def start(self) -> AdvertiserSink:
        super().start()
        return self
