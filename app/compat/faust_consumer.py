"""Faust's Kafka consumer, changed so that nothing is skipped across a restart or
rebalance, and fetches wait briefly for data.

Faust 0.15.3 hands aiokafka its *live* set of active partitions, and changes that
set (pausing partitions for a rebalance or a table recovery) while aiokafka waits
for records. Once the set is empty, aiokafka returns the buffered records of
*every* partition; Faust drops those of partitions it has paused, but aiokafka has
already moved their positions past them. After a worker restart that recovered a
table, the stream partitions' positions ran to the log end this way; the seek to
the committed offsets came after the first of those far records had been fetched,
so the worker went on from the log end and Faust marked everything in between as
done ("a gap"): thousands of accepted impressions lost across a worker kill
(docs/ARCHITECTURE.md, "Nothing skipped by a consumer"). The consumer thread
below fetches for a snapshot of the set, and nothing when it is empty; and a gap
in fetched offsets is never marked committable.

Faust drops fetched records in other places too (a partition paused while its
batch is handed out, a stopped flow, a new generation), each after aiokafka moved
past them; a worker restarted in CI still jumped one fetch ahead on every stream
partition. So, whatever drops them: a stream record beyond the next expected offset
is held back and its partition sought back to that offset (app/compat/contiguous_offsets.py).
Its read offset (Faust's drain loop drops any record below it) goes back with it, as
Faust's own ``seek`` does and ``seek_wait`` does not: otherwise the records fetched
again are dropped once more (tests/unit/test_faust_transport.py).

Faust 0.15.3 skips a message that reaches a stream after the consumer group's
generation changed (it was fetched before the rebalance; the consumer seeks back
to the committed offset and fetches it again) -- and *acks* the skipped copy, "so
the lag does not grow". That ack puts its offset in the list of acked offsets, so
the next commit can pass messages whose fresh copies the agents have not processed
yet; a crash then loses them. Refusing the stale ack costs nothing: the fresh copy
is acked when it is processed. At worst a message whose processing spanned a
rebalance is processed again, which every effect here tolerates (see
docs/ARCHITECTURE.md, "Nothing skipped by a consumer").

Faust's commit also passes one record that no agent processed: it checks the head
of the acked offsets against the committed offset as if that were the last record
processed, where Kafka's committed offset is the next one to read. Any record not
acked at the head of a partition (dropped after the fetch, as above) was committed
past at the next commit; on a contiguous topic the head must be the committed offset.
A head left unacked behind later acks for a minute is a record lost after it was
handed over, however it was lost: its partition is sought back to it
(app/compat/unacked_heads.py), so commits do not stay stopped until a restart.

Upstream: positions run ahead of a seek across a recovery or a rebalance,
https://github.com/faust-streaming/faust/issues/216 and /issues/221 (closed, the
generation check of pull 223; the drops above are still there in 0.15.3); gaps
committed as done, https://github.com/faust-streaming/faust/issues/606 (open); the
skipped stale message acked comes with that check,
https://github.com/faust-streaming/faust/pull/223.

Written for faust-streaming 0.15.3 and aiokafka 0.14.0, on Apache Kafka 4.4; each
part is declared, with its upstream issue, in app/compat/patches.py, and reads its
settings from ``install()``.

Each part has a test that fails without it:
- the fetch for a snapshot: tests/integration/test_fetch_snapshot.py, aiokafka's
  real fetcher on the test Kafka (the paused partition's records are consumed);
- the contiguity guard and the gap never committed: tests/unit/test_faust_transport.py,
  on Faust's own consumer classes (Faust commits 11 across dropped offsets 8-9, ours
  8; Faust hands 10 on, ours holds it and seeks back to 8). The drops themselves are
  races: on Kafka the guard refetched 2-4 times per run after a rebalance in the
  scale-out and broker-outage tests, and one run of those tests without it passed;
- the stale ack refused, the head of the acked offsets and its seek back, the fetch
  settings and the idempotent producer: same file.

Its drain loop, which hands each record to the streams, is app/compat/faust_drain.py's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Hashable, Mapping
from typing import Any, ClassVar, cast

from aiokafka.errors import IllegalStateError
from faust.transport.drivers import aiokafka as faust_aiokafka

from app.compat.contiguous_offsets import ContiguousOffsets
from app.compat.faust_drain import drain_messages
from app.compat.installed import installed_settings
from app.compat.patches import FETCH_SETTINGS, missing_internal
from app.compat.processed_offsets import ProcessedOffsets
from app.compat.unacked_heads import UnackedHeads
from app.events import kinds

log = logging.getLogger("imptrack.consumer")

# Written by the edge's plain (never transactional) producer.


def _set_internal(consumer: Any, name: str, value: object) -> None:
    """Set a private field of aiokafka's consumer. Set on a consumer that no longer
    has it, the value would be ignored without a word: that is refused instead."""
    if not hasattr(consumer, name):
        raise missing_internal(FETCH_SETTINGS, f"{type(consumer).__name__}.{name}")
    setattr(consumer, name, value)


class WorkerConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Fetches for a snapshot of the active partitions, with a short fetch wait."""

    async def getmany(self, active_partitions: Any, timeout: float) -> Any:  # noqa: ASYNC109 - Faust's signature
        if active_partitions is not None:
            # A copy: Faust changes its set while aiokafka waits, and an empty set
            # means "every partition" to aiokafka.
            active_partitions = set(active_partitions)
            if not active_partitions:
                return {}
        return await super().getmany(active_partitions, timeout)

    # Faust hard-codes a 1.5 s fetch wait. Kafka answers a waiting fetch as soon as
    # data arrives, but a fetch that finds nothing is held for the whole wait, and a
    # postback naming an impression not yet seen waits for such an empty answer
    # (agents/table_progress.py): a short wait bounds the verdict's delay; it costs a few
    # more empty fetches on an idle partition.
    #
    # With a fetch_min_bytes of 1 (the default of WORKER_FETCH_MIN_BYTES, aiokafka's
    # too) Kafka answers a fetch as soon as one record arrives: under load the
    # consumer thread fetches and hands over a record or two at a time and fights
    # the agents' thread for the GIL. 64 KB made a loaded partition answer in
    # batches: at 150 pixels/s (after warm-up, 20 s) the worker took 39 % of a core
    # instead of 55, the forwarder 13 instead of 25. But each hop then waits up to
    # the fetch wait at any rate below 64 KB a wait, and a postback's verdict takes
    # two hops: the latency is chosen by default, the CPU is a setting.

    def fetched_end(self, tp: Any) -> tuple[int, int] | None:
        """The high watermark of ``tp`` in the last fetch answered for it, and when
        that answer arrived (ms since the epoch); None before the first answer."""
        consumer = self._consumer
        if consumer is None or tp not in consumer.assignment():
            return None
        highwater, answered_ms = consumer.highwater(tp), consumer.last_poll_timestamp(tp)
        if highwater is None or answered_ms is None:
            return None
        return int(highwater), int(answered_ms)

    def _create_worker_consumer(self, transport: Any) -> Any:
        patched = installed_settings()
        consumer = super()._create_worker_consumer(transport)
        # No public way in: aiokafka reads these when it starts its fetcher.
        _set_internal(consumer, "_fetch_max_wait_ms", patched.fetch_wait_ms)
        _set_internal(consumer, "_fetch_min_bytes", patched.fetch_min_bytes)
        # Faust reads committed records only in an exactly_once app; the forwarder
        # (always at-least-once) reading forward tasks of an exactly_once worker
        # would deliver the tasks of an aborted transaction too. Without
        # transactions every record is committed, so this costs nothing then.
        _set_internal(consumer, "_isolation_level", "read_committed")
        return consumer


class CurrentGenerationConsumer(faust_aiokafka.Consumer):
    stale_acks_refused: ClassVar[int] = 0
    gaps_seen: ClassVar[int] = 0
    gaps_refetched: ClassVar[int] = 0
    unacked_heads_refetched: ClassVar[int] = 0
    HEADS_CHECKED_EVERY: ClassVar[float] = 1.0
    """Seconds between two looks at the acked offsets (a look is a min() over each
    partition's list, and fetches come many times a second)."""

    @property
    def _contiguous(self) -> ContiguousOffsets:
        tracker: ContiguousOffsets = self.__dict__.setdefault(
            "_contiguous_offsets", ContiguousOffsets()
        )
        return tracker

    @property
    def _processed(self) -> ProcessedOffsets:
        tracker: ProcessedOffsets = self.__dict__.setdefault(
            "_processed_offsets", ProcessedOffsets()
        )
        return tracker

    @property
    def _unacked_heads(self) -> UnackedHeads:
        heads: UnackedHeads = self.__dict__.setdefault("_unacked_heads_state", UnackedHeads())
        return heads

    def _lost_heads(self, skipped: Mapping[Any, int]) -> dict[Any, int]:
        """The contiguous partitions (other than ``skipped``) whose committed offset
        was handed over and lost, with that offset; looked at once a
        ``HEADS_CHECKED_EVERY`` at most."""
        now = time.monotonic()
        if now - self.__dict__.get("_heads_checked_at", 0.0) < self.HEADS_CHECKED_EVERY:
            return {}
        self.__dict__["_heads_checked_at"] = now
        lost = {}
        for tp in list(self._acked):
            if tp in skipped:
                continue
            head = self._unacked_head(tp)
            if self._unacked_heads.lost(tp, head) and head is not None:
                lost[tp] = head
        return lost

    def _unacked_head(self, tp: Any) -> int | None:
        """The committed offset of ``tp`` (the next record to process) if it is not
        acked while a later record is, on a contiguous topic; else None."""
        acked: list[int] = self._acked[tp]
        committed: int | None = self._committed_offset.get(tp)
        if not acked or committed is None or min(acked) <= committed:
            return None
        return committed if self._contiguous_topic(tp.topic) else None

    def processed(self, tp: Any, offset: int) -> None:
        """An agent is done with the record at ``offset`` of ``tp`` (see
        agents/table_progress.py)."""
        self._processed.processed(tp, offset)

    def processed_up_to_end(self, tp: Any, answered_after_ms: int) -> bool:
        """Whether a fetch answered after ``answered_after_ms`` found nothing in
        ``tp`` beyond what the agents have processed."""
        fetched = cast(WorkerConsumerThread, self._thread).fetched_end(tp)
        return self._processed.caught_up(tp, fetched, answered_after_ms)

    async def getmany(self, timeout: float) -> AsyncIterator[Any]:  # noqa: ASYNC109 - Faust's signature
        # Faust drops fetched records on the way (a paused partition, a stopped
        # flow, a new generation) after aiokafka moved past them; a stream record
        # beyond the next expected offset shows such a drop. Its partition's records
        # are held back and the partition is sought back, so nothing is skipped
        # whatever dropped them (app/compat/contiguous_offsets.py).
        contiguous = self._contiguous
        refetch: dict[Any, int] = {}
        handed: set[Any] = set()
        async for tp, message in super().getmany(timeout):
            if tp in refetch:
                continue
            # Changelog partitions (acks off) are positioned by table recovery.
            if self._contiguous_topic(message.topic) and not contiguous.admit(tp, message.offset):
                refetch[tp] = contiguous.expected(tp)  # type: ignore[assignment]
                continue
            handed.add(tp)
            yield tp, message
        # A dropped tail has no later record to show it: the high watermark does.
        thread = cast(WorkerConsumerThread, self._thread)
        for tp in list(self._get_active_partitions()):
            if tp in handed or tp in refetch or not self._contiguous_topic(tp.topic):
                continue
            fetched = thread.fetched_end(tp)
            if fetched is not None and contiguous.stalled(tp, fetched[0]):
                refetch[tp] = contiguous.expected(tp)  # type: ignore[assignment]
        for tp, offset in refetch.items():
            type(self).gaps_refetched += 1
            log.warning(
                "offsets %d.. of %s were dropped before reaching the stream; fetching them again",
                offset,
                tp,
            )
        # A record dropped after it was handed over shows as a committed offset never
        # acked behind later acks (app/compat/unacked_heads.py).
        for tp, offset in self._lost_heads(refetch).items():
            type(self).unacked_heads_refetched += 1
            log.error(
                "offset %d of %s was handed to the agents and never acknowledged while "
                "later ones were; fetching it again",
                offset,
                tp,
            )
            refetch[tp] = offset
        for tp, offset in refetch.items():
            try:
                await self.seek_wait({tp: offset})
            except IllegalStateError:
                # Revoked meanwhile: its next owner starts from the committed offset.
                self._contiguous.forget([tp])
                continue
            # Faust's drain loop drops any record below the partition's read offset,
            # which it moved past the dropped records too; seek_wait, unlike seek,
            # leaves it there, so the records fetched again were dropped once more
            # and the partition's commits stopped at them until a restart (seen after
            # a frozen broker woke: impressions answered with a GIF, not recorded).
            self._read_offset[tp] = offset if offset else None

    async def seek(self, partition: Any, offset: int) -> None:
        await super().seek(partition, offset)
        self._contiguous.positioned({partition: offset})

    async def seek_wait(self, partitions: Any) -> None:
        await super().seek_wait(partitions)
        self._contiguous.positioned(partitions)

    async def seek_to_committed(self) -> Any:
        committed = await super().seek_to_committed()
        # The committed offset is the next to read. aiokafka seeks only to a positive
        # one and leaves other partitions where they are, so for those the next
        # offset is not known here and anything is accepted next.
        resumed: dict[Hashable, int | None] = {
            tp: o if o and o > 0 else None for tp, o in committed.items()
        }
        self._contiguous.positioned(resumed)
        self._processed.positioned(resumed)
        return committed

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self._contiguous.forget(revoked)
        self._unacked_heads.forget(revoked)
        self._processed.forget(revoked)
        await super().on_partitions_revoked(revoked)

    def _contiguous_topic(self, topic: str) -> bool:
        """Whether ``topic``'s offsets have no holes: true of every event topic under
        at-least-once. Under exactly_once the worker writes its output topics in
        transactions, whose commit markers take offsets of their own; only the
        edge's topics (never transactional) stay contiguous. Changelog partitions
        (acks off) are positioned by table recovery and never checked."""
        if not self.app.topics.acks_enabled_for(topic):
            return False
        if installed_settings().exactly_once:
            return topic in kinds.EDGE_TOPICS
        return True

    async def _add_gap(self, tp: Any, offset_from: int, offset_to: int) -> None:
        # Faust marks offsets it never received as done when fetched offsets jump,
        # which turns a skip into a loss. On a contiguous topic a jump is never
        # legitimate: the partition's commits stop at the jump instead, and the next
        # start reads it again. A transaction's marker is a legitimate jump.
        if not self._contiguous_topic(tp.topic):
            await super()._add_gap(tp, offset_from, offset_to)
            return
        type(self).gaps_seen += 1
        log.error(
            "offsets %d..%d of %s were skipped by the fetch; its offsets are not "
            "committed past them until the worker restarts",
            offset_from,
            offset_to,
            tp,
        )

    def _new_offset(self, tp: Any) -> int | None:
        # Faust's check of the acked list's head is one off: it lets a commit through
        # when the first acked offset is one past the committed offset, which is the
        # next record to read, not the last one processed. With 88 committed and 89
        # and 90 acked it commits 91, past 88, which no agent processed. On a
        # contiguous topic the head of the acked list must be the committed offset.
        if self._unacked_head(tp) is not None:
            return None
        return super()._new_offset(tp)

    async def _drain_messages(self, fetcher: Any) -> None:
        # Each record handed to the streams without four tasks of its own when that
        # does not wait (app/compat/faust_drain.py).
        await drain_messages(self, fetcher)

    def _new_consumer_thread(self) -> Any:
        return WorkerConsumerThread(self, loop=self.loop, beacon=self.beacon)

    def ack(self, message: Any) -> bool:
        if message.generation_id != self.app.consumer_generation_id:
            type(self).stale_acks_refused += 1
            return False
        first_acked = self.__dict__.setdefault("_first_acked", {})
        if message.tp not in first_acked:
            # Where processing really resumed after the seek, next to where it
            # should have (logged by perform_seek): the pair shows any jump.
            first_acked[message.tp] = message.offset
            log.info("first ack after the seek: %s at %d", message.tp, message.offset)
        return bool(super().ack(message))

    async def perform_seek(self) -> None:
        await super().perform_seek()
        self.__dict__["_first_acked"] = {}
        log.info(
            "seeked to committed offsets: %s",
            {f"{tp.topic}:{tp.partition}": o for tp, o in self._committed_offset.items()},
        )

    async def _commit(self, offsets: Any) -> bool:
        log.debug("committing %s", {f"{tp.topic}:{tp.partition}": o for tp, o in offsets.items()})
        return bool(await super()._commit(offsets))


class IdempotentProducer(faust_aiokafka.Producer):
    """Faust 0.15.3 makes its producer idempotent only under exactly_once; a retried
    send would then write a record twice. The broker supports it (Apache Kafka
    0.11+), so every producer is idempotent, with acks=all as that requires."""

    def _settings_extra(self) -> Any:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class KafkaTransport(faust_aiokafka.Transport):
    Consumer = CurrentGenerationConsumer
    Producer = IdempotentProducer
