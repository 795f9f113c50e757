"""Time-ordered, unique 24-hex-character IDs for impressions (``aimp_id``) and clicks.

Layout (96 bits): 48-bit milliseconds since the Unix epoch, 24 bits chosen at random
once per process, 24-bit counter. IDs sort by time as plain strings, carry their own
timestamp, and two edge processes cannot collide unless they drew the same 24
random bits *and* their counters meet in the same millisecond.
"""

from __future__ import annotations

import os
import re
import threading
import time
from datetime import UTC, datetime

ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")
_COUNTER_SPACE = 1 << 24


class IdGenerator:
    """Strictly increasing IDs within one process, even if the wall clock steps back."""

    def __init__(self) -> None:
        self._node = int.from_bytes(os.urandom(3), "big")
        self._counter = int.from_bytes(os.urandom(3), "big")
        self._last_ms = 0
        self._lock = threading.Lock()

    def new_id(self, now_ms: int | None = None) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
            # Never let time go backwards within a process, so IDs stay sorted.
            ms = max(ms, self._last_ms)
            self._counter = (self._counter + 1) % _COUNTER_SPACE
            if self._counter == 0 and ms == self._last_ms:
                ms += 1  # the counter wrapped inside one millisecond
            self._last_ms = ms
            return f"{ms:012x}{self._node:06x}{self._counter:06x}"


def is_valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


def id_ms(value: str) -> int:
    """When an ID was issued, in milliseconds since the epoch (the ID must be valid)."""
    return int(value[:12], 16)


def id_time(value: str) -> datetime:
    """The moment an ID was issued (UTC, millisecond precision)."""
    if not is_valid_id(value):
        raise ValueError(f"{value!r} is not a 24-character lowercase hex ID")
    return datetime.fromtimestamp(id_ms(value) / 1000, tz=UTC)


_generator = IdGenerator()
new_id = _generator.new_id
