"""Secrets made once per installation: the admin API's key and the ID key.

Each is taken from its environment variable when set (every host of a deployment
must then be given the same value), else from a file under ``IMPTRACK_HOME``
created on first use. The file is created exclusively, so processes starting
together agree on one secret; it is readable by its owner only.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import time
from pathlib import Path

from app.exceptions import ConfigurationError
from app.settings import Settings


def _installation_secret(configured: str | None, path: Path, variable: str) -> str:
    if configured:
        return configured
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as secret_file:
            secret_file.write(secrets.token_urlsafe(32) + "\n")
    for _ in range(50):
        secret = path.read_text().strip()
        if secret:
            return secret
        # Another process created the file and is still writing it.
        time.sleep(0.02)
    raise ConfigurationError(f"{path} is empty; delete it or set {variable}")


def load_api_key(settings: Settings) -> str:
    """``IMPTRACK_API_KEY``, else the key in ``IMPTRACK_HOME/api-key``."""
    return _installation_secret(settings.api_key, settings.api_key_file, "IMPTRACK_API_KEY")


def load_id_key(settings: Settings) -> bytes:
    """The key that seals every ID the edge issues (app.ids): ``IMPTRACK_ID_KEY``, else
    the one in ``IMPTRACK_HOME/id-key``. Changing it makes every ID issued before
    unmatchable, so a postback for an older impression or click is refused."""
    text = _installation_secret(settings.id_key, settings.id_key_file, "IMPTRACK_ID_KEY")
    # Any text the operator chose, as 32 bytes.
    return hashlib.sha256(text.encode()).digest()
