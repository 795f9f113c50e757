"""Dashboard sessions: the login form's proof that the API key was given, kept in a
cookie so the key itself never sits in a URL, a page or the browser's storage.

A session is ``<expiry>.<nonce>.<signature>``, signed with a key derived from the
API key: nothing is stored on the exporter (a restart keeps everyone logged in),
and changing the API key ends every session at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

from aiohttp import web

COOKIE = "imptrack_dashboard"
LIFETIME_SECONDS = 12 * 3600


class Sessions:
    def __init__(
        self,
        api_key: str,
        lifetime: float = LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        # A key of its own, so a session's signature tells nothing of the API key.
        self._key = hashlib.sha256(b"imptrack dashboard session\0" + api_key.encode()).digest()
        self._lifetime = lifetime
        self._clock = clock

    def _signature(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def new(self) -> str:
        payload = f"{int(self._clock() + self._lifetime)}.{secrets.token_urlsafe(16)}"
        return f"{payload}.{self._signature(payload)}"

    def valid(self, session: str | None) -> bool:
        if not session or session.count(".") != 2:
            return False
        payload, _, signature = session.rpartition(".")
        if not hmac.compare_digest(signature.encode(), self._signature(payload).encode()):
            return False
        expiry = payload.partition(".")[0]
        return expiry.isdigit() and int(expiry) > self._clock()

    def holds(self, request: web.BaseRequest) -> bool:
        """Whether ``request`` carries a live session's cookie."""
        return self.valid(request.cookies.get(COOKIE))

    def start(self, request: web.BaseRequest, response: web.StreamResponse) -> None:
        response.set_cookie(
            COOKIE,
            self.new(),
            max_age=int(self._lifetime),
            path="/",
            httponly=True,  # no script reads it, so no injected script can take it
            samesite="Strict",  # and no other site's page sends it
            secure=request.secure,
        )

    @staticmethod
    def end(response: web.StreamResponse) -> None:
        response.del_cookie(COOKIE, path="/")
