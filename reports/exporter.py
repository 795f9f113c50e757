"""The exporter: event topics → DuckDB, each event exactly once.

It reads with manual partition assignment and keeps its offsets in DuckDB, in the
same transaction as the rows they cover, instead of committing them to Kafka: on
start it seeks to the stored offsets, so whatever was not committed to DuckDB is
read again and whatever was is not.

Recorded and rejected impressions come in envelopes (app.events.envelopes), many a
record: a fetch's envelopes become Arrow columns whole, field by field; the other
kinds are one JSON object a record. A record it cannot read (no envelope it knows,
no JSON object, or one of the wrong shape) is copied, as it was, to
``unreadable-records`` (app.events.dead_letters), and the broker has acknowledged
the copy before the offsets past it are stored: nothing accepted is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import duckdb
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from app.compat.kafka_metadata import cluster_id, wait_for_partitions
from app.events import dead_letters, kinds
from app.events.envelopes import EnvelopeKind, UnreadableEnvelope
from app.metrics import export as export_metrics
from app.metrics.state import LAG_TIMEOUT_SECONDS, record_lag
from app.settings import Settings
from reports import db, store
from reports.columns import ENVELOPE_BUILDERS, ROW_BUILDERS
from reports.freshness import ExportDelays
from reports.snapshot import SnapshotCopy, SnapshotPublisher, adopt_legacy_file

log = logging.getLogger("imptrack.exporter")

EXPORTED_TOPICS = {topic: export.table for topic, export in kinds.EXPORTS}
"""Each exported topic, and the kind of rows (reports.store.KINDS) it becomes."""

ENVELOPED_TOPICS: dict[str, EnvelopeKind] = {
    kind.topic: kind.envelope
    for kind in kinds.EVENTS
    if kind.export is not None and kind.envelope is not None
}
"""The exported topics whose records are envelopes, and how to read them."""

_UNBUILDABLE = (KeyError, TypeError, ValueError, ArithmeticError, AttributeError)
"""What a builder raises for an event of the wrong shape (pyarrow's errors are
TypeError and ValueError; a decimal that is no number, ArithmeticError; a postback's
parameters or a conversion's custom fields that are no object, AttributeError)."""


class Exporter:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # DuckDB calls block: they run on one thread of their own, in order.
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="duckdb")
        self.con: duckdb.DuckDBPyConnection | None = None
        self.cluster_id = ""
        self.exported: dict[str, int] = {}
        self.sent_to_unreadable = 0
        self.batches = 0
        self.last_batch_at: float | None = None
        self.positions: dict[tuple[str, int], int] = {}
        self.end_to_end = ExportDelays()
        self.newest_stored_ms: int | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._writer_lock: int | None = None
        self._unpublished = False
        self._copying: asyncio.Task[None] | None = None
        self.snapshot = SnapshotPublisher(
            settings.exporter_db_path, settings.duckdb_path, settings.snapshot_seconds
        )

    async def _in_db(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, fn, *args)

    async def start(self) -> None:
        s = self.settings
        self._writer_lock = db.hold_writer_lock(s.exporter_db_path)
        adopt_legacy_file(s.exporter_db_path, s.duckdb_path)
        self.con = await self._in_db(db.open_writer, s.exporter_db_path, s.exporter_memory_mb)
        # The export loop publishes the analysts' copy as soon as it runs (a new
        # schema or new views reach it then), not here on the start-up path.
        self._unpublished = True
        self.exported = await self._in_db(store.count_rows, self.con)
        consumer = AIOKafkaConsumer(
            bootstrap_servers=s.broker,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # An exactly_once worker's aborted transactions are never exported.
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,
            fetch_max_bytes=64 * 1024 * 1024,
        )
        await consumer.start()
        self._consumer = consumer
        producer = AIOKafkaProducer(
            bootstrap_servers=s.broker,
            acks="all",
            # A copy retried after a lost answer is not written twice.
            enable_idempotence=True,
        )
        await producer.start()
        self._producer = producer
        self.cluster_id = await cluster_id(consumer._client)
        tps = await wait_for_partitions(consumer, EXPORTED_TOPICS)
        consumer.assign(tps)
        stored = await self._in_db(store.load_offsets, self.con, self.cluster_id)
        fresh = []
        for tp in tps:
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                fresh.append(tp)
            else:
                consumer.seek(tp, offset)
            self.positions[(tp.topic, tp.partition)] = offset or 0
        if fresh:
            # One reset for all: each call waits for a round of the fetcher, which
            # made a restart cost half a second per partition never exported.
            await consumer.seek_to_beginning(*fresh)
        log.info(
            "exporter resuming cluster %s from %d stored offsets", self.cluster_id, len(stored)
        )

    async def run(self) -> None:
        if self._consumer is None or self.con is None:
            raise RuntimeError("Exporter.run() before Exporter.start()")
        s = self.settings
        # Each fetch is turned into Arrow at once: a batch waiting for its flush holds
        # columns (about the size of the JSON), not a dict per event (three times that).
        chunks: dict[str, list[pa.Table]] = {kind: [] for kind in store.KINDS}
        pending = 0
        next_offsets: dict[tuple[str, int], int] = {}
        first_at: float | None = None
        while True:
            fetched = await self._consumer.getmany(
                timeout_ms=100, max_records=max(1, s.export_batch_rows - pending)
            )
            for tp, messages in fetched.items():
                if not messages:
                    continue
                kind = EXPORTED_TOPICS[tp.topic]
                envelope_kind = ENVELOPED_TOPICS.get(tp.topic)
                if envelope_kind is None:
                    rows, unreadable = read_objects(kind, messages)
                else:
                    rows, unreadable = read_envelopes(envelope_kind, kind, messages)
                await self._send_unreadable(tp, unreadable)
                chunks[kind].append(rows)
                pending += rows.num_rows
                next_offsets[(tp.topic, tp.partition)] = messages[-1].offset + 1
                first_at = first_at or time.monotonic()
            due = first_at is not None and time.monotonic() - first_at >= s.export_batch_seconds
            if next_offsets and (pending >= s.export_batch_rows or due):
                await self._flush(chunks, next_offsets)
                chunks = {kind: [] for kind in store.KINDS}
                pending, next_offsets, first_at = 0, {}, None
            # Also when traffic stops: the last batches must reach the analysts' copy.
            if self._unpublished and self._copying is None and self.snapshot.due():
                await self._start_publishing()

    async def _send_unreadable(
        self, tp: TopicPartition, unreadable: list[tuple[ConsumerRecord, str]]
    ) -> None:
        """Copy each record as it was to ``unreadable-records``; return once the broker
        has every copy. An error here ends the export loop before the offsets past
        the records are stored, so they are read, and copied, again."""
        if not unreadable:
            return
        if self._producer is None:
            raise RuntimeError("Exporter used before Exporter.start()")
        acks = [
            await self._producer.send(
                dead_letters.TOPIC,
                value=message.value,
                key=message.key,
                headers=dead_letters.headers(tp.topic, tp.partition, message.offset, reason),
            )
            for message, reason in unreadable
        ]
        await asyncio.gather(*acks)
        for message, reason in unreadable:
            self.sent_to_unreadable += 1
            dead_letters.log_sent(log, tp.topic, tp.partition, message.offset, reason)

    async def _flush(
        self, chunks: dict[str, list[pa.Table]], next_offsets: dict[tuple[str, int], int]
    ) -> None:
        rows = {kind: pa.concat_tables(tables) for kind, tables in chunks.items() if tables}
        batch = store.Batch(rows, dict(next_offsets))
        fresh = await self._in_db(store.write_batch, self.con, self.cluster_id, batch)
        for kind, count in fresh.items():
            self.exported[kind] = self.exported.get(kind, 0) + count
        export_metrics.stored(fresh)
        for table in rows.values():
            if "ts" in table.column_names and table.num_rows:
                newest = pc.max(table.column("ts")).cast(pa.int64()).as_py()
                if newest is not None and newest > (self.newest_stored_ms or 0):
                    self.newest_stored_ms = newest
        impressions = rows.get("impressions")
        if impressions is not None:
            self.end_to_end.committed(impressions.column("ts"))
        self.batches += 1
        self.last_batch_at = time.time()
        self.positions.update(next_offsets)
        self._unpublished = True

    async def _start_publishing(self) -> None:
        """Checkpoint, then copy the analysts' snapshot beside the export loop, which
        goes on fetching and writing meanwhile (reports/snapshot.py says why the copy
        is still the checkpoint's)."""
        try:
            copy = await self._in_db(self.snapshot.begin, self.con)
        except (OSError, duckdb.Error):
            # The analysts' copy is late, the export goes on; the next batch tries again.
            log.exception("could not checkpoint for the snapshot %s", self.snapshot.target)
            return
        # Batches written from here on are not in this copy: they set it again.
        self._unpublished = False
        self._copying = asyncio.create_task(self._copy(copy), name="snapshot-copy")

    async def _copy(self, copy: SnapshotCopy) -> None:
        copied = False
        try:
            await asyncio.to_thread(self.snapshot.copy, copy)
            copied = True
        except OSError:
            self._unpublished = True
            log.exception("could not copy the snapshot %s", self.snapshot.target)
        finally:
            try:
                await self._in_db(self.snapshot.finish, self.con, copy, copied)
            except (OSError, duckdb.Error):
                self._unpublished = True
                log.exception("could not publish the snapshot %s", self.snapshot.target)
            self._copying = None

    async def _publish(self) -> None:
        """Publish now, the loop stopped (at stop)."""
        try:
            await self._in_db(self.snapshot.publish, self.con)
            self._unpublished = False
        except (OSError, duckdb.Error):
            log.exception("could not publish the snapshot %s", self.snapshot.target)

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()
        if self._producer is not None:
            await self._producer.stop()
        if self._copying is not None:
            # The copy reads the file the close would checkpoint: let it end first.
            await asyncio.shield(self._copying)
        if self.con is not None:
            await self._publish()
            await self._in_db(self.con.close)
        self.snapshot.close()
        if self._writer_lock is not None:
            os.close(self._writer_lock)
        self._db_thread.shutdown(wait=True)

    async def measure(self) -> None:
        """Set the export's metrics: the records not stored yet per topic and
        partition (against the end offsets), how far behind the newest event that is,
        and the DuckDB files' sizes."""
        export_metrics.measure_files(self.settings.exporter_db_path, self.settings.duckdb_path)
        if self._consumer is None:
            return
        assigned = list(self._consumer.assignment())
        try:
            async with asyncio.timeout(LAG_TIMEOUT_SECONDS):
                ends = await self._consumer.end_offsets(assigned)
        except (KafkaError, OSError, TimeoutError) as exc:
            log.warning("could not read the exported topics' end offsets: %s", exc)
            return
        positions = {tp: self.positions.get((tp.topic, tp.partition), 0) for tp in assigned}
        record_lag("exporter", positions, ends)
        behind = sum(
            max(0, ends[tp] - position) for tp, position in positions.items() if tp in ends
        )
        export_metrics.measure_lag(behind, self.newest_stored_ms)

    def status(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "cluster_id": self.cluster_id,
            "exported": self.exported,
            # Where the export resumes, per topic and partition: what it stored, in
            # records (an envelope is one), for reading its lag against end offsets.
            "positions": {f"{t}:{p}": offset for (t, p), offset in sorted(self.positions.items())},
            # Edge to the DuckDB file, per impression committed in the last minute
            # (reports/freshness.py); the analysts' copy is published after it.
            "end_to_end": self.end_to_end.summary(),
            "sent_to_unreadable": self.sent_to_unreadable,
            "batches": self.batches,
            "last_batch_at": self.last_batch_at,
            "duckdb": str(self.settings.exporter_db_path),
            "snapshot": self.snapshot.status(),
        }

    async def query(self, fn: Any, *args: Any) -> Any:
        """Run a report on a cursor of the writer's connection (the file is locked to
        other processes while the exporter runs)."""
        if self.con is None:
            raise RuntimeError("Exporter.query() before Exporter.start()")
        cursor = self.con.cursor()
        try:
            return await asyncio.to_thread(fn, cursor, *args)
        finally:
            cursor.close()


def read_envelopes(
    envelope_kind: EnvelopeKind, kind: str, messages: Sequence[ConsumerRecord]
) -> tuple[pa.Table, list[tuple[ConsumerRecord, str]]]:
    """The rows of ``kind`` (an exported table) that a fetch's envelopes hold, and the
    records that are no envelope it can read, each with why."""
    return _read(
        messages,
        envelope_kind.decode,
        str,
        ENVELOPE_BUILDERS[kind],
        lambda envelope, exc: f"{envelope_kind.kind} envelope v{envelope.format.version}: {exc}",
    )


def read_objects(
    kind: str, messages: Sequence[ConsumerRecord]
) -> tuple[pa.Table, list[tuple[ConsumerRecord, str]]]:
    """The rows of ``kind`` (an exported table carried one JSON object a record) in a
    fetch, and the records that are no such object, each with why."""
    return _read(
        messages,
        lambda value: orjson.loads(value or b""),
        lambda exc: f"{kind} record: not JSON ({exc})",
        ROW_BUILDERS[kind],
        lambda _, exc: f"{kind} record of the wrong shape: {type(exc).__name__}: {exc}",
    )


def _read(
    messages: Sequence[ConsumerRecord],
    decode: Callable[[bytes], Any],
    undecodable: Callable[[Exception], str],
    build: Callable[[list[Any]], pa.Table],
    unbuildable: Callable[[Any, Exception], str],
) -> tuple[pa.Table, list[tuple[ConsumerRecord, str]]]:
    """Each record decoded, then the rows ``build`` makes of them; the records it
    cannot decode or build, each with why (``undecodable``, ``unbuildable``), in
    offset order."""
    unreadable: list[tuple[ConsumerRecord, str]] = []
    decoded: list[tuple[ConsumerRecord, Any]] = []
    for message in messages:
        try:
            decoded.append((message, decode(message.value)))
        except (UnreadableEnvelope, orjson.JSONDecodeError) as exc:
            unreadable.append((message, undecodable(exc)))
    return _built_each(build, decoded, unbuildable, unreadable), unreadable


def _built_each(
    build: Callable[[list[Any]], pa.Table],
    decoded: list[tuple[ConsumerRecord, Any]],
    why: Callable[[Any, Exception], str],
    unreadable: list[tuple[ConsumerRecord, str]],
) -> pa.Table:
    """``build`` of the decoded items, all at once; when that fails, item by item, each
    one it cannot build added to ``unreadable`` (then in offset order) with ``why``: a
    record of the wrong shape must not stop the export of the others."""
    try:
        return build([item for _, item in decoded])
    except _UNBUILDABLE:
        pass
    kept = []
    for message, item in decoded:
        try:
            build([item])
        except _UNBUILDABLE as exc:
            unreadable.append((message, why(item, exc)))
        else:
            kept.append(item)
    unreadable.sort(key=lambda found: found[0].offset)
    return build(kept)
