"""What a worker keeps and how far behind the consumers are: table keys and bytes on
disk, and consumer lag per group, topic and partition, read from the broker when
scraped."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from prometheus_client import Gauge

from app.compat.rocksdb_store import store_figures

log = logging.getLogger("imptrack.metrics")

TABLE_KEYS = Gauge(
    "imptrack_table_keys",
    "Keys in a table's local store (RocksDB's estimate, index entries included).",
    ["table"],
)
TABLE_BYTES = Gauge(
    "imptrack_table_disk_bytes", "Bytes on disk of a table's local store.", ["table"]
)
CONSUMER_LAG = Gauge(
    "imptrack_consumer_lag_records",
    "Records of a partition not yet consumed: its end offset minus the consumer's "
    "committed (or, for the exporter, stored) offset.",
    ["group", "topic", "partition"],
)
LAG_TIMEOUT_SECONDS = 5.0
LAG_FRESH_SECONDS = 1.0
"""Scrapes closer together than this reuse the last reading (each takes a broker
round trip or two)."""


def measure_tables(tables: Iterable[Any]) -> None:
    """Set the keys and bytes of each of ``tables`` (Faust tables) stored here."""
    for table in tables:
        figures = store_figures(table.data)
        if figures is not None:
            TABLE_KEYS.labels(table.name).set(figures[0])
            TABLE_BYTES.labels(table.name).set(figures[1])


def record_lag(
    group: str, positions: Mapping[TopicPartition, int], ends: Mapping[TopicPartition, int]
) -> None:
    for tp, position in positions.items():
        end = ends.get(tp)
        if end is not None:
            CONSUMER_LAG.labels(group, tp.topic, str(tp.partition)).set(max(0, end - position))


class GroupLag:
    """A consumer group's lag, read from the broker (its committed offsets, the end
    offsets) at most every LAG_FRESH_SECONDS, through an admin client and a consumer
    without a group kept for the process's life (made again after an error)."""

    def __init__(self, bootstrap: str, group: str) -> None:
        self.bootstrap, self.group = bootstrap, group
        self._read_at = 0.0
        self._clients: tuple[AIOKafkaAdminClient, AIOKafkaConsumer] | None = None
        self.last_error: str | None = None

    async def measure(self) -> None:
        if time.monotonic() - self._read_at < LAG_FRESH_SECONDS:
            return
        self._read_at = time.monotonic()
        try:
            async with asyncio.timeout(LAG_TIMEOUT_SECONDS):
                admin, consumer = await self._connected()
                offsets = await admin.list_consumer_group_offsets(self.group)
                committed = {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}
                ends = await consumer.end_offsets(list(committed)) if committed else {}
        except (KafkaError, OSError, TimeoutError) as exc:
            # A scrape must answer even when the broker does not: the gauges keep
            # their last values, and the log says why they are not fresh.
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.warning("could not read the lag of group %s: %s", self.group, self.last_error)
            await self.close()
            return
        self.last_error = None
        record_lag(self.group, committed, ends)

    async def _connected(self) -> tuple[AIOKafkaAdminClient, AIOKafkaConsumer]:
        if self._clients is None:
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
            self._clients = (admin, consumer)
            await admin.start()
            await consumer.start()
        return self._clients

    async def close(self) -> None:
        clients, self._clients = self._clients, None
        if clients is None:
            return
        admin, consumer = clients
        with contextlib.suppress(KafkaError, OSError):
            await admin.close()
        with contextlib.suppress(KafkaError, OSError):
            await consumer.stop()
