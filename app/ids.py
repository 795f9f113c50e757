"""Time-ordered, unique, unguessable 24-hex-character IDs for impressions (``aimp_id``),
clicks (``clickid``) and postbacks, each saying which partition it lives on.

Layout (96 bits, docs/SECURITY.md "IDs nobody can guess"):

- 44 bits: milliseconds since 2020-01-01 UTC, in the clear (good until the year 2577).
  IDs sort by time as plain strings and carry their own timestamp.
- 52 bits: sealed with the network's ID key (a keyed permutation, tweaked by the
  time) over

  - 8 bits: the event partition the ID's events live on (docs/OPERATIONS.md, "The
    partition count"): a postback or click naming an ID is routed there by
    unsealing it, without a lookup;
  - 20 bits chosen at random once per process (its node);
  - 2 bits of sequence and 9 bits of slot: an impression's envelope (one Kafka record
    of up to 512 impressions, app.events.envelopes) is sequence 0-2 of its
    millisecond, and the impression its slot in it; IDs made one at a time (clicks,
    postbacks) are sequence 3 with the slot as a counter;
  - 13 zero bits, the check.

Without the key the sealed bits are unpredictable: the neighbours of an ID seen
(the same envelope's next slot, the same process's next counter) look like any other
52 random bits. With it, an ID the network did not issue is refused by unsealing
alone: its check bits come out as zero for one forged ID in 8,192, and those few are
then unknown to the tables (a lookup compares the whole ID). Two processes collide
only if they drew the same 20 node bits (one pair in a million) and meet on the same
partition, millisecond and sequence.

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
from dataclasses import dataclass
from datetime import UTC, datetime

ID_PATTERN = re.compile(r"[0-9a-f]{24}")  # fullmatch: a $ would let a final newline through

EPOCH_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
_TIME_HEX = 11  # 44 bits
_PARTITION_BITS = 8
_NODE_BITS = 20
_SEQ_BITS = 2
_SLOT_BITS = 9
_CHECK_BITS = 13
_HALF_BITS = 26
_HALF_MASK = (1 << _HALF_BITS) - 1
_ROUNDS = 4

MAX_PARTITIONS = 1 << _PARTITION_BITS
"""The most event partitions an ID can name."""
ENVELOPE_SLOTS = 1 << _SLOT_BITS
"""The most impressions one envelope holds."""
_ENVELOPE_SEQS = (1 << _SEQ_BITS) - 1  # sequences 0-2: envelopes
_SINGLE_SEQ = _ENVELOPE_SEQS  # sequence 3: IDs made one at a time


def is_valid_id(value: str) -> bool:
    """Whether ``value`` has the form of an ID (24 lowercase hex); says nothing of who
    issued it: :meth:`IdSeal.issued` does."""
    return ID_PATTERN.fullmatch(value) is not None


def id_ms(value: str) -> int:
    """When an ID was issued, in milliseconds since the epoch (the ID must be valid)."""
    return int(value[:_TIME_HEX], 16) + EPOCH_MS


def id_time(value: str) -> datetime:
    """The moment an ID was issued (UTC, millisecond precision)."""
    if not is_valid_id(value):
        raise ValueError(f"{value!r} is not a 24-character lowercase hex ID")
    return datetime.fromtimestamp(id_ms(value) / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class IdParts:
    """What an issued ID's sealed bits say."""

    tick: int  # ms since EPOCH_MS
    partition: int
    node: int
    seq: int
    slot: int

    @property
    def envelope_key(self) -> str:
        """The key of the envelope an impression's ID names (time first, so keys sort
        by age): its table entry is read by this key, the impression is at ``slot``."""
        return envelope_key(self.tick, self.partition, self.node, self.seq)


def envelope_key(tick: int, partition: int, node: int, seq: int) -> str:
    return f"{tick:011x}{partition:02x}{node:05x}{seq:x}"


ENVELOPE_KEY_PATTERN = re.compile(r"^[0-9a-f]{19}$")


def envelope_key_ms(key: str) -> int | None:
    """When an envelope was opened, in milliseconds since the epoch; None for a key
    that is not an envelope key."""
    if not ENVELOPE_KEY_PATTERN.match(key):
        return None
    return int(key[:_TIME_HEX], 16) + EPOCH_MS


def _plain(partition: int, node: int, seq: int, slot: int) -> int:
    head = (((partition << _NODE_BITS) | node) << _SEQ_BITS | seq) << _SLOT_BITS | slot
    return head << _CHECK_BITS


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

    def parts(self, value: str) -> IdParts | None:
        """What ``value`` says, if this network issued it (its check bits unseal to
        zero); None for anything else."""
        if not is_valid_id(value):
            return None
        tick = int(value[:_TIME_HEX], 16)
        plain = self.unseal(tick, int(value[_TIME_HEX:], 16))
        if plain & ((1 << _CHECK_BITS) - 1):
            return None
        plain >>= _CHECK_BITS
        slot = plain & (ENVELOPE_SLOTS - 1)
        plain >>= _SLOT_BITS
        seq = plain & ((1 << _SEQ_BITS) - 1)
        plain >>= _SEQ_BITS
        node = plain & ((1 << _NODE_BITS) - 1)
        return IdParts(tick, plain >> _NODE_BITS, node, seq, slot)

    def issued(self, value: str) -> bool:
        """Whether this network issued ``value``: its check bits unseal to zero."""
        return self.parts(value) is not None

    def origin(self, value: str) -> int:
        """The node of the process that issued ``value`` (an issued ID): which edge
        process answered, for an operator tracing one."""
        parts = self.parts(value)
        if parts is None:
            raise ValueError(f"{value!r} was not issued by this network")
        return parts.node

    def partition(self, value: str) -> int | None:
        """The event partition of an issued ID; None if this network did not issue it."""
        parts = self.parts(value)
        return None if parts is None else parts.partition


class EnvelopeIds:
    """The IDs of one envelope's impressions: one millisecond, one partition, slot
    by slot."""

    __slots__ = ("_plain", "_seal", "key", "partition", "tick")

    def __init__(self, seal: IdSeal, tick: int, partition: int, node: int, seq: int) -> None:
        self._seal = seal
        self._plain = _plain(partition, node, seq, 0)
        self.tick = tick
        self.partition = partition
        self.key = envelope_key(tick, partition, node, seq)

    def id(self, slot: int) -> str:
        if not 0 <= slot < ENVELOPE_SLOTS:
            raise ValueError(f"an envelope has slots 0-{ENVELOPE_SLOTS - 1}, not {slot}")
        sealed = self._seal.seal(self.tick, self._plain | (slot << _CHECK_BITS))
        return f"{self.tick:011x}{sealed:013x}"


class IdGenerator:
    """IDs of one process, never going back in time even if the wall clock steps back."""

    def __init__(self, seal: IdSeal) -> None:
        self._seal = seal
        self._node = int.from_bytes(os.urandom(3), "big") >> (24 - _NODE_BITS)
        self._counter = int.from_bytes(os.urandom(2), "big") % ENVELOPE_SLOTS
        self._last_tick = 0
        self._envelopes: dict[int, tuple[int, int]] = {}  # partition -> (tick, last seq)
        self._lock = threading.Lock()

    @property
    def seal(self) -> IdSeal:
        return self._seal

    @property
    def node(self) -> int:
        return self._node

    def _tick(self, now_ms: int | None) -> int:
        ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
        return max(ms - EPOCH_MS, self._last_tick)

    def new_id(self, now_ms: int | None = None, *, partition: int = 0) -> str:
        """One ID on ``partition``, made alone (a click, a postback)."""
        _check_partition(partition)
        with self._lock:
            tick = self._tick(now_ms)
            self._counter = (self._counter + 1) % ENVELOPE_SLOTS
            if self._counter == 0 and tick == self._last_tick:
                tick += 1  # the counter wrapped inside one millisecond
            self._last_tick = tick
            counter = self._counter
        plain = _plain(partition, self._node, _SINGLE_SEQ, counter)
        return f"{tick:011x}{self._seal.seal(tick, plain):013x}"

    def open_envelope(self, partition: int, now_ms: int | None = None) -> EnvelopeIds:
        """The IDs of a new envelope on ``partition``: up to three per partition and
        millisecond, the fourth moves to the next millisecond."""
        _check_partition(partition)
        with self._lock:
            tick = self._tick(now_ms)
            last_tick, last_seq = self._envelopes.get(partition, (-1, -1))
            seq = last_seq + 1 if last_tick == tick else 0
            if seq == _ENVELOPE_SEQS:
                tick, seq = tick + 1, 0
            self._envelopes[partition] = (tick, seq)
            self._last_tick = tick
        return EnvelopeIds(self._seal, tick, partition, self._node, seq)


def _check_partition(partition: int) -> None:
    if not 0 <= partition < MAX_PARTITIONS:
        raise ValueError(f"an ID names partitions 0-{MAX_PARTITIONS - 1}, not {partition}")
