"""How far the agents have processed each partition of their input.

Every offset before ``next_offset(tp)`` has been processed: by this consumer, or
before the committed offset it resumed from. Together with a fetch's high
watermark this tells whether a table holds every event its partition had when the
broker answered that fetch (agents/table_progress.py).

Pure bookkeeping, kept apart from the consumer so it can be tested on its own.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping


class ProcessedOffsets:
    """The next offset to process, per partition this consumer was positioned on."""

    def __init__(self) -> None:
        self._next: dict[Hashable, int] = {}

    def positioned(self, offsets: Mapping[Hashable, int | None]) -> None:
        """The consumer resumes ``offsets`` from their committed offsets (None: from
        the start of the log; 0 is a lower bound for it)."""
        for tp, offset in offsets.items():
            self._next[tp] = offset if offset is not None and offset > 0 else 0

    def processed(self, tp: Hashable, offset: int) -> None:
        """The record at ``offset`` is processed. Records of a partition are processed
        in order; one read again after a seek back does not move the mark back, and
        one beyond a passed gap (app/compat/contiguous_offsets.py) moves it past offsets
        the broker no longer holds. A partition this consumer was not positioned on (a
        record fetched before its partition was revoked) is not tracked."""
        current = self._next.get(tp)
        if current is not None and offset >= current:
            self._next[tp] = offset + 1

    def next_offset(self, tp: Hashable) -> int | None:
        return self._next.get(tp)

    def caught_up(self, tp: Hashable, fetched: tuple[int, int] | None, after_ms: int) -> bool:
        """Whether the fetch ``fetched`` (the partition's high watermark and when the
        answer arrived, ms), if answered after ``after_ms``, found nothing beyond
        what was processed."""
        processed = self._next.get(tp)
        if fetched is None or processed is None:
            return False
        highwater, answered_ms = fetched
        return answered_ms > after_ms and processed >= highwater

    def forget(self, tps: Iterable[Hashable]) -> None:
        """The partitions left this consumer (revoked)."""
        for tp in tps:
            self._next.pop(tp, None)
