"""Which fetched records a stream may hand on: never one beyond an offset it skipped.

The event topics are neither compacted nor transactional, so their offsets are
contiguous: a record at offset N+k reaching a stream whose last record was at N
means records N+1..N+k-1 were fetched and then dropped on the way (Faust drops a
batch's records when a partition is paused, the flow stops or the generation
changes, after aiokafka has already moved past them). Handing on N+k would turn
that drop into a loss. The consumer instead holds the partition's records back and
seeks it to N+1, so the dropped records are fetched again.

A drop of a partition's *last* records shows no later record, so it is found
another way: the partition's high watermark (from the last fetch answer) stays
beyond the expected offset for ``stall_seconds`` while the stream gets nothing of
it (:meth:`stalled`). Seen on Apache Kafka after a rebalance: the worker's session
expired while the broker was frozen, the rejoin dropped the tail record of an idle
partition, and it waited for the next record on that partition to be found.

A gap that is still there after ``grace_seconds`` of fetching again is not a drop:
the records are not on the broker (retention deleted them, or a transaction's
marker holds the offset). The stream then goes on beyond it, and the consumer's gap
handling stops commits there.

Pure bookkeeping, kept apart from the consumer so it can be tested on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable, Mapping

GAP_GRACE_SECONDS = 30.0
STALL_SECONDS = 2.0


class ContiguousOffsets:
    """The next offset each partition's stream expects."""

    def __init__(
        self,
        grace_seconds: float = GAP_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        stall_seconds: float = STALL_SECONDS,
    ) -> None:
        self._next: dict[Hashable, int] = {}
        # (partition, expected offset) -> when records beyond it were first held back.
        self._held_since: dict[tuple[Hashable, int], float] = {}
        self._grace = grace_seconds
        self._clock = clock
        self._stall = stall_seconds
        # partition -> (expected offset, since when records up to the end were awaited)
        self._awaited_since: dict[Hashable, tuple[int, float]] = {}
        self.passed = 0

    def admit(self, tp: Hashable, offset: int) -> bool:
        """Whether the record at ``offset`` may be handed on; records before the
        expected offset (read again after a seek) always may."""
        expected = self._next.get(tp)
        if expected is not None and offset > expected:
            now = self._clock()
            since = self._held_since.setdefault((tp, expected), now)
            if now - since < self._grace:
                return False
            self.passed += 1
        if expected is not None:
            self._held_since.pop((tp, expected), None)
        self._next[tp] = offset + 1
        return True

    def stalled(self, tp: Hashable, end: int) -> bool:
        """Whether ``tp``'s stream has waited ``stall_seconds`` for records below
        ``end`` (the partition's high watermark) without the expected one coming."""
        expected = self._next.get(tp)
        if expected is None or end <= expected:
            self._awaited_since.pop(tp, None)
            return False
        now = self._clock()
        awaited = self._awaited_since.get(tp)
        if awaited is None or awaited[0] != expected:
            self._awaited_since[tp] = (expected, now)
            return False
        return now - awaited[1] >= self._stall

    def expected(self, tp: Hashable) -> int | None:
        return self._next.get(tp)

    def positioned(self, offsets: Mapping[Hashable, int | None]) -> None:
        """The consumer was sought to ``offsets`` (None: to wherever the reset policy
        puts it, so anything is accepted next)."""
        for tp, offset in offsets.items():
            self._awaited_since.pop(tp, None)
            if offset is None:
                self._next.pop(tp, None)
            else:
                self._next[tp] = offset

    def forget(self, tps: Iterable[Hashable]) -> None:
        """The partitions left this consumer (revoked)."""
        gone = set(tps)
        for tp in gone:
            self._next.pop(tp, None)
            self._awaited_since.pop(tp, None)
        for key in [key for key in self._held_since if key[0] in gone]:
            del self._held_since[key]
