"""The exporter: event topics → DuckDB, each event exactly once.

It reads with manual partition assignment and keeps its offsets in DuckDB, in the
same transaction as the rows they cover, instead of committing them to Kafka: on
start it seeks to the stored offsets, so whatever was not committed to DuckDB is
read again and whatever was is not.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from app import topic_names
from app.broker_identity import cluster_id
from app.settings import Settings
from reports import db, store
from reports.columns import impressions_batch

log = logging.getLogger("imptrack.exporter")

EXPORTED_TOPICS = (topic_names.RECORDED_IMPRESSIONS,)


class Exporter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # DuckDB calls block: they run on one thread of their own, in order.
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb")
        self.con: duckdb.DuckDBPyConnection | None = None
        self.cluster_id = ""
        self.exported_impressions = 0
        self.skipped_malformed = 0
        self.batches = 0
        self.last_batch_at: float | None = None
        self.positions: dict[tuple[str, int], int] = {}
        self._consumer: AIOKafkaConsumer | None = None

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, fn, *args)

    async def start(self) -> None:
        s = self.settings
        self.con = await self._in_db(db.open_writer, s.duckdb_path)
        self.exported_impressions = await self._in_db(store.count_impressions, self.con)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.broker,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        self.cluster_id = await cluster_id(consumer._client)
        tps = await self._partitions(consumer)
        consumer.assign(tps)
        stored = await self._in_db(store.load_offsets, self.con, self.cluster_id)
        for tp in tps:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
            self.positions[(tp.topic, tp.partition)] = offset or 0
        log.info(
            "exporter resuming cluster %s from %d stored offsets", self.cluster_id, len(stored)
        )

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        """All partitions of the exported topics, waiting until they exist."""
        while True:
            await consumer._client.force_metadata_update()
            found = []
            for topic in EXPORTED_TOPICS:
                partitions = consumer.partitions_for_topic(topic)
                if not partitions:
                    break
                found += [TopicPartition(topic, p) for p in sorted(partitions)]
            else:
                return found
            log.info("waiting for topics %s to exist", ", ".join(EXPORTED_TOPICS))
            await asyncio.sleep(1.0)

    async def run(self) -> None:
        assert self._consumer is not None and self.con is not None
        s = self.settings
        events: list[dict[str, Any]] = []
        next_offsets: dict[tuple[str, int], int] = {}
        first_at: float | None = None
        while True:
            fetched = await self._consumer.getmany(
                timeout_ms=100, max_records=max(1, s.export_batch_rows - len(events))
            )
            for tp, messages in fetched.items():
                for message in messages:
                    try:
                        events.append(orjson.loads(message.value))
                    except orjson.JSONDecodeError:
                        # Not ours to guess at; skipping keeps the partition moving.
                        self.skipped_malformed += 1
                        log.error("skipped a malformed event at %s:%d", tp, message.offset)
                if messages:
                    next_offsets[(tp.topic, tp.partition)] = messages[-1].offset + 1
                    first_at = first_at or time.monotonic()
            due = first_at is not None and time.monotonic() - first_at >= s.export_batch_seconds
            if next_offsets and (len(events) >= s.export_batch_rows or due):
                await self._flush(events, next_offsets)
                events, next_offsets, first_at = [], {}, None

    async def _flush(
        self, events: list[dict[str, Any]], next_offsets: dict[tuple[str, int], int]
    ) -> None:
        try:
            batch = store.Batch(impressions_batch(events), dict(next_offsets))
        except (KeyError, TypeError, ValueError) as exc:
            # One event with a wrong shape must not stop the export of the others.
            batch = store.Batch(impressions_batch(_well_formed(events)), dict(next_offsets))
            log.error("skipped malformed events in a batch: %s", exc)
        fresh = await self._in_db(store.write_batch, self.con, self.cluster_id, batch)
        self.exported_impressions += fresh
        self.batches += 1
        self.last_batch_at = time.time()
        self.positions.update(next_offsets)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self.con is not None:
            await self._in_db(self.con.close)
        self._db_thread.shutdown(wait=True)

    def status(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "cluster_id": self.cluster_id,
            "exported": {"impressions": self.exported_impressions},
            "skipped_malformed": self.skipped_malformed,
            "batches": self.batches,
            "last_batch_at": self.last_batch_at,
            "duckdb": str(self.settings.duckdb_path),
        }

    async def query(self, fn: Any, *args: Any) -> Any:
        """Run a report on a cursor of the writer's connection (the file is locked to
        other processes while the exporter runs)."""
        assert self.con is not None
        cursor = self.con.cursor()
        try:
            return await asyncio.to_thread(fn, cursor, *args)
        finally:
            cursor.close()


def _well_formed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    kept = []
    for event in events:
        try:
            impressions_batch([event])
        except (KeyError, TypeError, ValueError):
            continue
        kept.append(event)
    return kept
