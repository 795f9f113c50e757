"""Time-ordered, unique, unguessable 24-hex-character IDs for impressions (``aimp_id``),
clicks (``clickid``) and postbacks.

Layout (96 bits, docs/SECURITY.md "IDs nobody can guess"):

- 44 bits: milliseconds since 2020-01-01 UTC, in the clear (good until the year 2577).
  IDs sort by time as plain strings and carry their own timestamp.
- 52 bits: sealed with the network's ID key (a keyed permutation, tweaked by the
  time) over 22 bits chosen at random once per process, a 10-bit counter and 20
  zero bits.

Without the key the sealed bits are unpredictable: the neighbours of an ID seen
(the same process's next or previous counter) look like any other 52 random bits.
With it, an ID the network did not issue is refused by unsealing alone: its 20 check
bits come out as zero for one forged ID in a million, and those few are then unknown
to the tables. Two processes collide only if they drew the same 22 random bits (one
pair in 4 million) and their counters meet in the same millisecond.

The permutation is a 4-round Feistel network on two 26-bit halves with keyed
BLAKE2s as its round function: four rounds make it a strong pseudorandom permutation
(Luby-Rackoff), which matters here because anyone may post an ID and learn whether
it was issued.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import time
from datetime import UTC, datetime

ID_PATTERN = re.compile(r"^[0-9a-f]{24}$")

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
_TIME_HEX = 11  # 44 bits
_NODE_BITS = 22
_COUNTER_BITS = 10
_CHECK_BITS = 20
_HALF_BITS = 26
_HALF_MASK = (1 << _HALF_BITS) - 1
_COUNTER_SPACE = 1 << _COUNTER_BITS
_ROUNDS = 4


def is_valid_id(value: str) -> bool:
    """Whether ``value`` has the form of an ID (24 lowercase hex); says nothing of who
    issued it: :meth:`IdSeal.issued` does."""
    return bool(ID_PATTERN.match(value))


def id_ms(value: str) -> int:
    """When an ID was issued, in milliseconds since the epoch (the ID must be valid)."""
    return int(value[:_TIME_HEX], 16) + EPOCH_MS


def id_time(value: str) -> datetime:
    """The moment an ID was issued (UTC, millisecond precision)."""
    if not is_valid_id(value):
        raise ValueError(f"{value!r} is not a 24-character lowercase hex ID")
    return datetime.fromtimestamp(id_ms(value) / 1000, tz=UTC)


class IdSeal:
    """The keyed permutation over an ID's last 52 bits, tweaked by its time."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("an ID key must be at least 16 bytes")
        # One keyed hasher, copied per round: cheaper than keying one each time.
        self._keyed = hashlib.blake2s(key=key[:32], digest_size=4, person=b"imptrkid")

    def _round(self, number: int, tick: int, half: int) -> int:
        h = self._keyed.copy()
        h.update(bytes((number,)) + tick.to_bytes(6, "big") + half.to_bytes(4, "big"))
        return int.from_bytes(h.digest(), "big") & _HALF_MASK

    def seal(self, tick: int, plain: int) -> int:
        left, right = plain >> _HALF_BITS, plain & _HALF_MASK
        for number in range(_ROUNDS):
            left, right = right, left ^ self._round(number, tick, right)
        return (left << _HALF_BITS) | right

    def unseal(self, tick: int, sealed: int) -> int:
        left, right = sealed >> _HALF_BITS, sealed & _HALF_MASK
        for number in reversed(range(_ROUNDS)):
            left, right = right ^ self._round(number, tick, left), left
        return (left << _HALF_BITS) | right

    def origin(self, value: str) -> int:
        """The random bits of the process that issued ``value`` (an issued ID): which
        edge process answered, for an operator tracing one."""
        tick = int(value[:_TIME_HEX], 16)
        return self.unseal(tick, int(value[_TIME_HEX:], 16)) >> (_COUNTER_BITS + _CHECK_BITS)

    def issued(self, value: str) -> bool:
        """Whether this network issued ``value``: its check bits unseal to zero."""
        if not is_valid_id(value):
            return False
        tick = int(value[:_TIME_HEX], 16)
        plain = self.unseal(tick, int(value[_TIME_HEX:], 16))
        return plain & ((1 << _CHECK_BITS) - 1) == 0


class IdGenerator:
    """Strictly increasing IDs within one process, even if the wall clock steps back."""

    def __init__(self, seal: IdSeal) -> None:
        self._seal = seal
        self._node = int.from_bytes(os.urandom(3), "big") >> (24 - _NODE_BITS)
        self._counter = int.from_bytes(os.urandom(2), "big") % _COUNTER_SPACE
        self._last_tick = 0
        self._lock = threading.Lock()

    @property
    def seal(self) -> IdSeal:
        return self._seal

    def new_id(self, now_ms: int | None = None) -> str:
        with self._lock:
            ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
            # Never let time go backwards within a process, so IDs stay sorted.
            tick = max(ms - EPOCH_MS, self._last_tick)
            self._counter = (self._counter + 1) % _COUNTER_SPACE
            if self._counter == 0 and tick == self._last_tick:
                tick += 1  # the counter wrapped inside one millisecond
            self._last_tick = tick
            counter = self._counter
        plain = ((self._node << _COUNTER_BITS) | counter) << _CHECK_BITS
        return f"{tick:011x}{self._seal.seal(tick, plain):013x}"
