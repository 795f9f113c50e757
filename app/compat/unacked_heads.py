"""Which partitions lost a record between the fetch and the agents: their committed
offset was never acknowledged, while a later record was.

A stream processes a partition's records in order, and a take_events batch acks its
records in order too, so a record acked while the one at the committed offset (the
next to process) is not means the latter never reached an agent: Faust dropped it on
the way after it was handed over (one such path was the flow control's queues
emptied on a resume, app/compat/faust_flow.py). The consumer never commits past such
a record (faust_consumer ``_new_offset``), so without more the partition's commits
stop there until the worker restarts, and its lag grows.

Records acked before a seek back to the committed offset also sit beyond it for a
while, until the records fetched again reach them; so a head is judged lost only
once it has stayed unacked for ``grace_seconds``, far longer than a batch takes. The
consumer then seeks the partition back to it. A head judged lost wrongly costs
records processed twice, which every effect here tolerates.

Pure bookkeeping, kept apart from the consumer so it can be tested on its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable

UNACKED_HEAD_GRACE_SECONDS = 60.0


class UnackedHeads:
    """Since when each partition's committed offset has been unacked behind a later ack."""

    def __init__(
        self,
        grace_seconds: float = UNACKED_HEAD_GRACE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._grace = grace_seconds
        self._clock = clock
        self._since: dict[Hashable, tuple[int, float]] = {}

    def lost(self, tp: Hashable, head: int | None) -> bool:
        """Whether ``head``, the committed offset (the next to process) left unacked
        while a later record was acked, or None when there is none, was lost: it has
        stayed so for ``grace_seconds``. Judged lost once: the partition is then
        sought back, and the wait starts again."""
        if head is None:
            self._since.pop(tp, None)
            return False
        now = self._clock()
        waited_on, since = self._since.get(tp, (None, now))
        if waited_on != head:
            self._since[tp] = (head, now)
            return False
        if now - since < self._grace:
            return False
        self._since[tp] = (head, now)
        return True

    def forget(self, tps: Iterable[Hashable]) -> None:
        for tp in tps:
            self._since.pop(tp, None)
