"""The admin API's key: ``IMPTRACK_API_KEY``, or one generated once per installation."""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import time

from aiohttp import web

from app.exceptions import ConfigurationError
from app.settings import Settings

HEADER = "API-Key"


def load_api_key(settings: Settings) -> str:
    """The configured key, else the one in ``IMPTRACK_HOME/api-key``, created on first use.

    The file is created exclusively, so edge processes starting together agree on
    one key; it is readable by its owner only.
    """
    if settings.api_key:
        return settings.api_key
    path = settings.api_key_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as key_file:
            key_file.write(secrets.token_urlsafe(32) + "\n")
    for _ in range(50):
        key = path.read_text().strip()
        if key:
            return key
        # Another process created the file and is still writing it.
        time.sleep(0.02)
    raise ConfigurationError(f"{path} is empty; delete it or set IMPTRACK_API_KEY")


def is_authorized(request: web.Request, api_key: str) -> bool:
    # The header's bytes as sent: aiohttp keeps bytes that are not UTF-8 as lone
    # surrogates, which a plain encode() refuses.
    given = request.headers.get(HEADER, "").encode("utf-8", "surrogateescape")
    # Constant time: how much of a guess matched must not show in response times.
    return hmac.compare_digest(given, api_key.encode())
