"""Following the ``catalog`` topic: the whole catalog, in memory, in every process.

The edge and the workers each run one follower. It reads every partition of the
topic from the beginning with no consumer group (each process needs all of it)
and applies records as they arrive; a fetch waits at most ``fetch_wait_ms`` for new
records (``FETCH_WAIT_MS`` by default), so a change is in effect well within a second
of being written.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from app.catalog.changes import decode
from app.catalog.history import CatalogHistory
from app.catalog.model import Catalog
from app.compat.kafka_metadata import wait_for_partitions
from app.events import kinds

log = logging.getLogger("imptrack.catalog")

FETCH_WAIT_MS = 100
BROKER_RETRY_SECONDS = 1.0
"""How long to wait before asking the broker again after it did not answer."""


class CatalogFollower:
    def __init__(
        self,
        bootstrap: str,
        topic: str = kinds.CATALOG_TOPIC,
        fetch_wait_ms: int = FETCH_WAIT_MS,
    ) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        # The broker holds a fetch that finds nothing for the whole wait, so it bounds
        # how soon wait_current can prove a moment current: up to two waits.
        self.fetch_wait_ms = fetch_wait_ms
        self.history = CatalogHistory()
        # Set once everything written before start-up has been applied; nothing may
        # be judged against a half-loaded catalog.
        self.ready = asyncio.Event()
        self.next_offsets: dict[int, int] = {}
        self.skipped_malformed = 0
        self._applied = asyncio.Condition()
        # Every record the broker took before this moment (ms) is applied: set from
        # fetches that found nothing new (see wait_current).
        self.current_as_of_ms = 0
        self._caught_up = asyncio.Condition()

    async def run(self) -> None:
        """Follow the topic until cancelled."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=self.fetch_wait_ms,
            )
            try:
                await consumer.start()
                break
            except KafkaError as exc:
                # A worker may start before the broker answers; it waits rather than
                # running without a catalog. The failed consumer is closed first: each
                # retry made a new one, and the old ones stayed open.
                await _close(consumer)
                log.warning("cannot reach the broker for the catalog (%s); retrying", exc)
                await asyncio.sleep(BROKER_RETRY_SECONDS)
            except asyncio.CancelledError:
                await _close(consumer)
                raise
        try:
            partitions = await wait_for_partitions(consumer, (self.topic,))
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            # End offsets may be understated by some brokers (see docs/ARCHITECTURE.md);
            # "caught up" also needs one fetch that finds nothing new.
            ends = await consumer.end_offsets(partitions)
            while True:
                asked_ms = int(time.time() * 1000)
                try:
                    fetched = await consumer.getmany(timeout_ms=self.fetch_wait_ms)
                except KafkaError as exc:
                    log.warning("catalog fetch failed (%s); retrying", exc)
                    await asyncio.sleep(BROKER_RETRY_SECONDS)
                    continue
                for tp, messages in fetched.items():
                    now_ms = int(time.time() * 1000)
                    for message in messages:
                        self._apply(message, tp, now_ms)
                    if messages:
                        self.next_offsets[tp.partition] = messages[-1].offset + 1
                if fetched:
                    async with self._applied:
                        self._applied.notify_all()
                    continue
                if self.ready.is_set():
                    # Nothing new since the fetcher's previous request, which went out
                    # at most one fetch wait before we asked.
                    async with self._caught_up:
                        self.current_as_of_ms = asked_ms - self.fetch_wait_ms
                        self._caught_up.notify_all()
                elif await _reached(consumer, ends):
                    log.info(
                        "catalog loaded: %d advertisers, %d affiliates, %d offers",
                        len(self.catalog.advertisers),
                        len(self.catalog.affiliates),
                        len(self.catalog.offers),
                    )
                    self.ready.set()
        finally:
            await consumer.stop()

    def status(self) -> dict[str, Any]:
        """For the health pages of the edge and the worker."""
        return {
            "loaded": self.ready.is_set(),
            "offers": len(self.catalog.offers),
            "next_offsets": self.next_offsets,
            "skipped_malformed": self.skipped_malformed,
        }

    @property
    def catalog(self) -> Catalog:
        """The catalog in force now."""
        return self.history.current

    def catalog_at(self, moment_ms: int) -> Catalog:
        """The catalog in force at ``moment_ms`` (see :mod:`app.catalog.history`)."""
        return self.history.at(moment_ms)

    def _apply(self, message: Any, tp: TopicPartition, now_ms: int) -> None:
        try:
            self.history.apply(decode(message.key, message.value), message.timestamp, now_ms)
        except (ValueError, TypeError, KeyError) as exc:
            # A record no process can read must not stop the catalog for all others.
            self.skipped_malformed += 1
            log.error("skipped a malformed catalog record at %s:%d: %s", tp, message.offset, exc)

    async def wait_current(self, moment_ms: int, within: float) -> bool:
        """Wait until every catalog change written before ``moment_ms`` is applied.

        An event accepted at ``moment_ms`` was judged by the edge against the catalog
        then; a worker reading it sooner than its own catalog follower catches up
        would not know an offer created just before (and reject the impression as
        unknown). Returns False if ``within`` seconds passed first (the follower cannot
        reach the broker); the caller judges with what it has.
        """
        async with self._caught_up:
            try:
                async with asyncio.timeout(within):
                    await self._caught_up.wait_for(lambda: self.current_as_of_ms >= moment_ms)
            except TimeoutError:
                return False
        return True

    async def wait_applied(self, partition: int, offset: int) -> None:
        """Wait until the record at ``partition``/``offset`` is in :attr:`catalog`."""
        async with self._applied:
            await self._applied.wait_for(lambda: self.next_offsets.get(partition, 0) > offset)


async def _reached(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    for tp, end in ends.items():
        if await consumer.position(tp) < end:
            return False
    return True


async def _close(consumer: AIOKafkaConsumer) -> None:
    """Close a consumer whose start failed or was cancelled (it may hold a client)."""
    with contextlib.suppress(KafkaError):
        await consumer.stop()
