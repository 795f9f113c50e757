"""Consumers on the embedded broker never read past a batch that is not stored yet.

Tansu 0.6.0, the embedded broker, gives a produced batch its offsets (raises the
partition's high watermark) *before* it stores the batch. A fetch that comes in
between, while a later batch from another producer connection is already stored,
returns the later batch: the consumer's position moves past the earlier one, which
appears a moment later and is never read. With two edge processes producing to the
same partitions this lost accepted impressions, a few at a time, in every consumer
(worker, exporter) -- and it is easy to reproduce with two producers and one
consumer (tests/integration/test_broker_holes.py).

Offsets here are contiguous: no event topic is compacted by the embedded broker and
nothing is transactional, so a batch that starts beyond the next expected offset
means "the batch in between is not there *yet*". The fetched records stop before
such a hole and the next fetch asks again from its start. A hole that does not fill
within ``HOLE_GRACE_SECONDS`` (the broker failed to store a batch after numbering
it) is passed with a warning, so no consumer stalls for good.

Installed only for the embedded broker (:func:`guard_embedded_broker`): a real
Kafka stores a batch before it is visible, and its compacted topics have
legitimate holes.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from aiokafka.consumer import fetcher as aiokafka_fetcher

log = logging.getLogger("imptrack.broker_holes")

HOLE_GRACE_SECONDS = 10.0


class HoleCounters:
    """How often consumers of this process met a hole, and passed one unfilled."""

    waited: ClassVar[int] = 0
    passed: ClassVar[int] = 0
    # (topic, partition, first missing offset) -> when it was first met.
    _first_met: ClassVar[dict[tuple[str, int, int], float]] = {}

    @classmethod
    def may_pass(cls, tp: Any, missing_from: int, missing_to: int) -> bool:
        """Whether a fetch may go beyond offsets ``missing_from..missing_to``."""
        key = (tp.topic, tp.partition, missing_from)
        now = time.monotonic()
        first = cls._first_met.get(key)
        if first is None:
            cls.waited += 1
            # Holes fill within milliseconds; forget any the consumer moved away from.
            for old, met in list(cls._first_met.items()):
                if now - met > 2 * HOLE_GRACE_SECONDS:
                    del cls._first_met[old]
            cls._first_met[key] = now
            return False
        if now - first < HOLE_GRACE_SECONDS:
            return False
        del cls._first_met[key]
        cls.passed += 1
        log.warning(
            "offsets %d..%d of %s:%d are still missing on the broker after %.0f s; "
            "reading on without them",
            missing_from,
            missing_to,
            tp.topic,
            tp.partition,
            HOLE_GRACE_SECONDS,
        )
        return True


class _BatchesUpToHole:
    """The fetched batches of one partition, ending before the first hole."""

    def __init__(self, records: Any, tp: Any, fetch_offset: int) -> None:
        self._records = records
        self._tp = tp
        self._expected = fetch_offset
        self._peeked: Any = None

    def has_next(self) -> bool:
        if self._peeked is None:
            if not self._records.has_next():
                return False
            self._peeked = self._records.next_batch()
        base = getattr(self._peeked, "base_offset", None)
        if base is None or base <= self._expected:
            return True
        if HoleCounters.may_pass(self._tp, self._expected, base - 1):
            self._expected = base
            return True
        return False

    def next_batch(self) -> Any:
        if not self.has_next():
            raise StopIteration
        batch, self._peeked = self._peeked, None
        self._expected = max(self._expected, batch.next_offset)
        return batch


class ContiguousPartitionRecords(aiokafka_fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's fetched records of a partition, stopped before a hole: the
    position stays at the hole, so the next fetch asks for it again."""

    def __init__(self, tp: Any, records: Any, aborted: Any, fetch_offset: int, *rest: Any):
        super().__init__(
            tp, _BatchesUpToHole(records, tp, fetch_offset), aborted, fetch_offset, *rest
        )


def guard_embedded_broker(embedded: bool) -> None:
    """Make this process's Kafka consumers wait for holes, if on the embedded broker."""
    if embedded:
        # aiokafka builds its fetched records through this module global; there is
        # no setting or hook for it.
        aiokafka_fetcher.PartitionRecords = ContiguousPartitionRecords
