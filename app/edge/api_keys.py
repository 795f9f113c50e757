"""The admin API's key check (the key itself: app.installation_secrets)."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable

from aiohttp import web

HEADER = "API-Key"
PATH_LOGGED = 200  # characters of a refused request's path written to the log


def is_authorized(request: web.BaseRequest, api_key: str) -> bool:
    return _is_the_key(request.headers.get(HEADER, ""), api_key)


def _is_the_key(given: str, api_key: str) -> bool:
    # The bytes as sent: aiohttp keeps bytes that are not UTF-8 as lone surrogates,
    # which a plain encode() refuses. Constant time: how much of a guess matched
    # must not show in response times.
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), api_key.encode())


class RefusedKeys:
    """Writes refused API-key requests to the log, so an operator sees who is
    knocking: the address, method and path, and whether a key was sent at all,
    never any of the key.

    One line per address per ``every`` seconds, with the count refused since the
    line before, and at most ``lines`` lines per ``every`` seconds in all, the next
    line counting those left out: guesses from one address or from many cannot
    flood the log. At most ``addresses`` addresses are remembered (the oldest line's
    address is forgotten first). Each process counts its own.
    """

    def __init__(
        self,
        log: logging.Logger,
        every: float = 60.0,
        lines: int = 100,
        addresses: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._every = every
        self._lines = lines
        self._addresses = addresses
        self._clock = clock
        # address -> (when its last line was written, refusals since then)
        self._seen: dict[str, tuple[float, int]] = {}
        self._window = (clock(), 0)  # (when the current period began, lines in it)
        self._left_out = 0  # refusals due a line but over ``lines``

    def refused(self, request: web.BaseRequest, sent: bool | None = None) -> None:
        """Count a refusal of ``request``; ``sent``: whether a key was given (by
        default, whether the request has the header)."""
        address = request.remote or "unknown"
        now = self._clock()
        last = self._seen.get(address)
        if last is not None and now - last[0] < self._every:
            self._seen[address] = (last[0], last[1] + 1)
            return
        began, written = self._window
        if now - began >= self._every:
            began, written = now, 0
        if written >= self._lines:
            self._left_out += 1
            return
        self._window = (began, written + 1)
        if sent is None:
            sent = bool(request.headers.get(HEADER))
        given = "a wrong key" if sent else f"no {HEADER} header"
        since = f"; {last[1]} more refused since its last line" if last and last[1] else ""
        # The path as sent, still percent-encoded: decoded, a %0A in it would forge a
        # line of the log. Without the query, which is no place for a key but may
        # hold one anyway; cut, as a path may be 8 KB.
        path = request.rel_url.raw_path[:PATH_LOGGED]
        if self._left_out:
            since += f"; {self._left_out} refused and not logged (over {self._lines} lines)"
            self._left_out = 0
        self._log.warning(
            "refused %s %s from %s: %s%s", request.method, path, address, given, since
        )
        # Re-inserted, so the dict's order is the order of the lines written.
        self._seen.pop(address, None)
        self._seen[address] = (now, 0)
        while len(self._seen) > self._addresses:
            del self._seen[next(iter(self._seen))]


class ApiKeyGate:
    """The API key's check for one application, every refusal logged (RefusedKeys):
    the one place a request is let in or turned away, so no endpoint checks the key
    without the log."""

    def __init__(self, api_key: str, log: logging.Logger) -> None:
        self._api_key = api_key
        self._refused = RefusedKeys(log)

    def admits(self, request: web.BaseRequest) -> bool:
        if is_authorized(request, self._api_key):
            return True
        self._refused.refused(request)
        return False

    def admits_given(self, request: web.BaseRequest, given: str) -> bool:
        """For a key typed into a form (the dashboard's login): checked, and a wrong
        one logged, as the header is."""
        if _is_the_key(given, self._api_key):
            return True
        self._refused.refused(request, sent=bool(given))
        return False

    def holds_key(self, request: web.BaseRequest) -> bool:
        """For a public endpoint that tells more to the network's own people (the
        pixel's aimp_id): whether the caller sent the right key. Sending none is the
        normal case and is not logged; a wrong one is, as any refused key."""
        return HEADER in request.headers and self.admits(request)
