"""What the soak (bench.soak) samples: the resident memory of every process of the
stack, and how far each consumer is behind the records waiting for it.

Ends are read with ``ListOffsets(latest)``, which the embedded broker answers with
the last record batch's base offset + 1 (docs/ARCHITECTURE.md): a backlog reads
low by at most the rest of one batch per partition, the same at every sample, so
its trend is unchanged. Reading every partition to its end instead (a tail reader)
made the embedded broker list every batch stored in each partition about ten times
a second (its memory storage lists a partition's batches on every fetch), as much
work as the worker's own fetches, and that slowed the consumers being measured.

How long the broker takes to answer a fetch is timed on its own (FetchTimer): one
fetch of one batch of impressions partition 0 at a time, by a consumer of its own,
so a slow answer never holds up a sample.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app import topic_names
from app.stack import Stack

# The Faust applications' consumer groups (app/faust_app.py) and what they read.
WORKER_GROUP = "imptrack"
FORWARDER_GROUP = "imptrack-forwarder"
GROUP_TOPICS = {
    WORKER_GROUP: (
        topic_names.IMPRESSIONS,
        topic_names.CLICKS,
        topic_names.POSTBACKS,
        topic_names.POSTBACK_MATCHES,
    ),
    FORWARDER_GROUP: (topic_names.FORWARD_TASKS,),
}


def _parent(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    return int(stat.rsplit(")", 1)[1].split()[1])


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (parent := _parent(int(entry))) is not None:
            children.setdefault(parent, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in sorted(children.get(todo.pop(), [])):
            found.append(child)
            todo.append(child)
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def stack_processes(stack: Stack) -> dict[str, int]:
    """Every process of the stack by name: each component's, and the processes it
    started (``edge-1``, ``edge-2`` under a supervising ``edge`` with EDGE_PROCESSES > 1;
    multiprocessing's resource tracker as ``edge-tracker``)."""
    processes = {}
    for name, pid in stack.running().items():
        processes[name] = pid
        workers = 0
        for child in _descendants(pid):
            if "resource_tracker" in _cmdline(child):
                processes[f"{name}-tracker"] = child
            else:
                workers += 1
                processes[f"{name}-{workers}"] = child
    return processes


def rss_mb(pid: int) -> float | None:
    """Resident memory in MB (VmRSS), or None if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 2)
    except OSError:
        return None
    return None


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """CPU time the process has used (user + system), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    # utime and stime: fields 14 and 15 of proc(5), 12 and 13 after "pid (comm)".
    return round((int(fields[11]) + int(fields[12])) / CLOCK_TICKS, 2)


def files_mb(folder: Path, pattern: str) -> float:
    """Total size in MB of the files under ``folder`` matching ``pattern``."""
    total = 0
    for path in folder.rglob(pattern):
        try:
            total += path.stat().st_size
        except OSError:
            continue  # removed by a flush or compaction meanwhile
    return round(total / 2**20, 2)


def data_on_disk(stack: Stack) -> dict[str, float]:
    """What explains two processes' memory: the worker's RocksDB write-ahead logs
    hold exactly what its memtables hold until they are flushed to SST files; the
    exporter's DuckDB file is what its buffer pool caches from."""
    s = stack.settings
    return {
        "worker_rocksdb_wal_mb": files_mb(s.worker_data_dir, "[0-9]*.log"),
        "worker_rocksdb_sst_mb": files_mb(s.worker_data_dir, "*.sst"),
        "exporter_duckdb_mb": files_mb(s.exporter_db_path.parent, "*.duckdb*"),
    }


class LagProbe:
    """Committed offsets of the Faust groups against the partitions' ends, and the
    exporter's, forwarder's and Redis's own figures, in one sample."""

    def __init__(self, stack: Stack) -> None:
        self.settings = stack.settings
        self._admin = AIOKafkaAdminClient(bootstrap_servers=self.settings.broker)
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.broker,
            enable_auto_commit=False,
        )
        self._redis = aioredis.from_url(self.settings.redis)
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self._admin.start()
        await self._consumer.start()
        topics = {t for group in GROUP_TOPICS.values() for t in group}
        topics |= {topic_names.RECORDED_IMPRESSIONS}
        self._partitions = [
            TopicPartition(topic, p)
            for topic in sorted(topics)
            for p in range(self.settings.topic_partitions)
        ]

    async def stop(self) -> None:
        await self._consumer.stop()
        await self._admin.close()
        await self._redis.aclose()
        await self._http.close()

    async def health(self, url: str) -> dict[str, Any]:
        async with self._http.get(f"{url}/healthz") as response:
            body: dict[str, Any] = await response.json()
            return body

    async def exported(self) -> dict[str, int]:
        status = await self.health(self.settings.exporter_url)
        return {kind: int(n) for kind, n in status["exported"].items()}

    async def end_offsets(self, floor: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Each partition's end as the broker reports it, or what a group (``floor``)
        has shown to exist beyond it (a group's committed offset can pass the
        reported end by the rest of the last batch)."""
        reported: dict[TopicPartition, int] = await self._consumer.end_offsets(self._partitions)
        return {tp: max(reported[tp], floor.get(tp, 0)) for tp in self._partitions}

    async def stored_records(self) -> int:
        """Records in every topic of the broker (reported ends: a batch short each),
        which the memory-only broker holds in its memory."""
        topics = await self._admin.list_topics()
        partitions = [
            TopicPartition(topic, p)
            for topic in topics
            for p in (self._consumer.partitions_for_topic(topic) or {0})
        ]
        ends = await self._consumer.end_offsets(partitions)
        return int(sum(ends.values()))

    async def sample(self) -> dict[str, Any]:
        """One reading of every backlog, in records.

        ``worker <topic>``, ``forwarder <topic>``: the end offset minus the group's
        committed offset (Faust commits every few seconds, so up to a commit interval
        of work done shows as lag). ``forwarder due in Redis``: tasks taken from Kafka,
        not yet delivered. ``exporter``: records on ``impressions-recorded`` minus
        impressions stored in DuckDB (its offsets live there, not in Kafka; with no
        replay the two counts are the same thing). ``end to end``: impressions the
        edge produced, not yet stored in DuckDB as an impression or a rejection.
        """
        # Consumers' positions first, ends after: ends only grow, so a backlog is never
        # read as negative (it may include what arrived during the sample).
        committed: dict[TopicPartition, int] = {}
        for group, topics in GROUP_TOPICS.items():
            # Named partitions: the embedded broker's answer to "all of them" does not
            # decode (aiokafka closes the connection).
            mine = [tp for tp in self._partitions if tp.topic in topics]
            offsets = await self._admin.list_consumer_group_offsets(group, partitions=mine)
            committed |= {tp: max(0, meta.offset) for tp, meta in offsets.items()}
        exported = await self.exported()
        forwarder = await self.health(self.settings.forwarder_url)
        ends = await self.end_offsets(committed)

        def total(topic: str) -> int:
            return sum(end for tp, end in ends.items() if tp.topic == topic)

        lag: dict[str, int] = {}
        for group, topics in GROUP_TOPICS.items():
            label = "worker" if group == WORKER_GROUP else "forwarder"
            for topic in topics:
                lag[f"{label} {topic}"] = total(topic) - sum(
                    n for tp, n in committed.items() if tp.topic == topic
                )
        lag["forwarder due in Redis"] = int(forwarder["forwarding"]["schedule"]["scheduled"])
        # Counted backlogs: the tail reader can be a fetch behind the exporter, which
        # would read as a few records below zero.
        stored = exported.get("impressions", 0)
        recorded = total(topic_names.RECORDED_IMPRESSIONS)
        lag["exporter impressions-recorded"] = max(0, recorded - stored)
        judged = stored + exported.get("rejections", 0)
        lag["end to end (edge to DuckDB)"] = max(0, total(topic_names.IMPRESSIONS) - judged)
        memory = await self._redis.info("memory")
        return {
            "lag": lag,
            "exported": exported,
            "produced": {t: total(t) for t in (topic_names.IMPRESSIONS, "impressions-recorded")},
            "redis": {
                "used_memory_mb": round(int(memory["used_memory"]) / 2**20, 2),
                "keys": int(await self._redis.dbsize()),
            },
            "broker_records": await self.stored_records(),
        }


FETCH_TIMEOUT_S = 10.0


class FetchTimer:
    """Times one fetch of one batch of impressions partition 0, the broker's answer
    included: how long every consumer waits on the broker now.

    The first batch: the embedded broker answers a fetch only from a batch's first
    offset, and the end it reports is not always one (seen: the newest batch, asked
    for at the reported end - 1, stopped coming after five minutes). The embedded
    broker lists every batch of the partition to answer (bench.broker_fetch), and
    answers requests behind the others it has queued.
    """

    def __init__(self, broker: str) -> None:
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=broker,
            enable_auto_commit=False,
            # No wait: the batch is there (a wait of 0 is never answered by the
            # embedded broker). One batch: a broker answers with at least one,
            # whatever the limit; how many records came is recorded.
            fetch_max_wait_ms=10,
            fetch_max_bytes=1,
            max_partition_fetch_bytes=1,
        )
        self._partition = TopicPartition(topic_names.IMPRESSIONS, 0)

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.assign([self._partition])
        # Paused between timed fetches: an assigned partition is fetched ahead in the
        # background, which would load the broker like a tail reader.
        self._consumer.pause(self._partition)

    async def stop(self) -> None:
        await self._consumer.stop()

    async def time_one(self) -> dict[str, Any] | None:
        """``{"ms", "records"}``, ``{"ms": None, "timed_out": True}`` with no answer
        within FETCH_TIMEOUT_S, or None while the partition is empty."""
        tp = self._partition
        if (await self._consumer.end_offsets([tp]))[tp] == 0:
            return None
        if not await self._consumer.seek_to_beginning(tp):
            return {"ms": None, "timed_out": True}
        self._consumer.resume(tp)
        try:
            started = time.perf_counter()
            fetched = await self._consumer.getmany(tp, timeout_ms=int(1000 * FETCH_TIMEOUT_S))
            elapsed = time.perf_counter() - started
        finally:
            self._consumer.pause(tp)
        records = len(fetched.get(tp, []))
        if not records:
            return {"ms": None, "timed_out": True}
        return {"ms": round(1000 * elapsed, 2), "records": records}
