"""What the soak (bench.soak) samples: the resident memory of every process of the
stack, how far each consumer is behind the records waiting for it, and what Redis
holds.

Backlogs are the partitions' end offsets (``ListOffsets(latest)``) minus the
groups' committed offsets, read without fetching a record, so the probe adds no
fetches to the broker whose consumers it measures.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from app.events import kinds
from app.ops.stack import Stack

# The Faust applications' consumer groups (app/streams/faust_app.py) and what they read.
WORKER_GROUP = "imptrack"
FORWARDER_GROUP = "imptrack-forwarder"
GROUP_TOPICS = {
    WORKER_GROUP: (
        kinds.IMPRESSIONS.topic,
        kinds.CLICKS.topic,
        kinds.POSTBACKS.topic,
        kinds.POSTBACK_MATCHES.topic,
    ),
    FORWARDER_GROUP: (kinds.FORWARD_TASKS.topic,),
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
    """Every process of the stack by name: each component's (the Kafka node's JVM as
    ``broker``, or ``broker-1``... with IMPTRACK_KAFKA_NODES > 1; ``redis``; ``worker``
    or ``worker-1``... with WORKER_PROCESSES > 1), and the processes an application
    component started (``edge-1``, ``edge-2`` under a supervising ``edge`` with
    EDGE_PROCESSES > 1; multiprocessing's resource tracker as ``edge-tracker``).

    Kafka's and Redis's children are left out: Redis forks to rewrite its
    append-only file, a child that shares its parent's memory and soon exits."""
    parts = stack.components()
    running = stack.running()
    missing = [part.name for part in parts if part.name not in running]
    if missing:
        raise RuntimeError(f"not running, so their memory cannot be sampled: {', '.join(missing)}")
    processes = {}
    for part in parts:
        pid = running[part.name]
        processes[part.name] = pid
        if part.service:
            continue
        workers = 0
        for child in _descendants(pid):
            if "resource_tracker" in _cmdline(child):
                processes[f"{part.name}-tracker"] = child
            else:
                workers += 1
                processes[f"{part.name}-{workers}"] = child
    return processes


def service_names(stack: Stack) -> list[str]:
    """The Kafka node(s) and Redis, which the stack starts for imptrack's processes."""
    return [part.name for part in stack.components() if part.service]


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


def data_on_disk(stack: Stack) -> dict[str, dict[str, float]]:
    """What explains some processes' memory, by process: a worker's RocksDB write-ahead
    logs hold exactly what its memtables hold until they are flushed to SST files;
    the exporter's DuckDB file is what its buffer pool caches from. With the Kafka
    logs, they are also the disk an impression takes (bench/retention.py)."""
    s = stack.settings
    disk = {"exporter": {"duckdb_mb": files_mb(s.exporter_db_path.parent, "*.duckdb*")}}
    # The stack's own Kafka nodes (none with an external broker): the topics' log
    # segments, not their preallocated indexes (bench/retention.py).
    kafka = s.data_dir / "kafka"
    if kafka.is_dir():
        disk["broker"] = {"kafka_log_mb": files_mb(kafka, "*.log")}
    for part in stack.components():
        if part.name == "worker" or part.name.startswith("worker-"):
            instance = int(part.env.get("IMPTRACK_INSTANCE", "1"))
            tables = dataclasses.replace(s, instance=instance).worker_data_dir
            disk[part.name] = {
                "rocksdb_wal_mb": files_mb(tables, "[0-9]*.log"),
                "rocksdb_sst_mb": files_mb(tables, "*.sst"),
            }
    return disk


# Every key imptrack writes to Redis starts with this (app/attribution/link_owners.py,
# app/forwarding/schedule.py); what follows it, past a hash tag, names the kind.
KEY_NAMESPACE = "imptrack"
REDIS_SCAN_COUNT = 1000  # SCAN's COUNT: keys looked at per call
REDIS_SCAN_MAX_KEYS = 1_000_000  # beyond this, the keys seen are a sample


def key_kind(key: str) -> str:
    """A key's name up to the part that varies: ``imptrack:{fwd}:forwarded:*`` for a
    forwarding dedup key, ``imptrack:{fwd}:due`` for itself."""
    parts = key.split(":")
    fixed = 0
    while fixed < len(parts) - 1 and (
        parts[fixed] == KEY_NAMESPACE or parts[fixed].startswith("{")
    ):
        fixed += 1
    kind = ":".join(parts[: fixed + 1])
    return f"{kind}:*" if len(parts) > fixed + 1 else kind


def _exported(exporter: dict[str, Any]) -> dict[str, int]:
    """What the exporter has stored, per kind of row (its health page)."""
    return {kind: int(n) for kind, n in exporter["exported"].items()}


def _stored_positions(exporter: dict[str, Any]) -> dict[str, int]:
    """Records the exporter has stored, per topic (all partitions; its health page)."""
    stored: dict[str, int] = {}
    for where, offset in exporter["positions"].items():
        topic = where.rpartition(":")[0]
        stored[topic] = stored.get(topic, 0) + int(offset)
    return stored


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
        topics |= {kinds.RECORDED_IMPRESSIONS.topic}
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
        return _exported(await self.health(self.settings.exporter_url))

    async def sample(self) -> dict[str, Any]:
        """One reading of every backlog, in records, and of Redis's memory.

        ``worker <topic>``, ``forwarder <topic>``: the end offset minus the group's
        committed offset (Faust commits every few seconds, so up to a commit interval
        of work done shows as lag). ``forwarder due in Redis``: tasks taken from Kafka,
        not yet delivered. ``exporter``: records (envelopes) on ``impressions-recorded``
        past the exporter's stored positions (its offsets live in DuckDB, not in
        Kafka). ``end to end``: envelopes the edge produced that the worker has not
        committed, plus recorded ones not yet stored in DuckDB.
        """
        # Consumers' positions first, ends after: ends only grow, so a backlog is never
        # read as negative (it may include what arrived during the sample).
        committed: dict[TopicPartition, int] = {}
        for group, topics in GROUP_TOPICS.items():
            mine = [tp for tp in self._partitions if tp.topic in topics]
            offsets = await self._admin.list_consumer_group_offsets(group, partitions=mine)
            # -1: nothing committed on that partition yet.
            committed |= {tp: max(0, meta.offset) for tp, meta in offsets.items()}
        exporter = await self.health(self.settings.exporter_url)
        exported, positions = _exported(exporter), _stored_positions(exporter)
        forwarder = await self.health(self.settings.forwarder_url)
        ends: dict[TopicPartition, int] = await self._consumer.end_offsets(self._partitions)

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
        # The exporter's positions were read before the ends, as the groups' commits were.
        # Impressions travel in envelopes, so these lags are in records (envelopes), as
        # the groups' are: counts of impressions on either side would not compare.
        recorded = kinds.RECORDED_IMPRESSIONS.topic
        lag[f"exporter {recorded}"] = max(0, total(recorded) - positions.get(recorded, 0))
        lag["end to end (edge to DuckDB)"] = (
            lag[f"worker {kinds.IMPRESSIONS.topic}"] + lag[f"exporter {recorded}"]
        )
        memory = await self._redis.info("memory")
        return {
            "lag": lag,
            # Edge to the exporter's DuckDB file, per impression of the last minute.
            "end_to_end_ms": exporter["end_to_end"],
            # How long its last copy of the analysts' snapshot took: the export loop
            # neither fetches nor writes meanwhile (reports/snapshot.py).
            "snapshot_copy_s": exporter["snapshot"]["copy_seconds"],
            "exported": exported,
            "produced": {
                t: total(t) for t in (kinds.IMPRESSIONS.topic, kinds.RECORDED_IMPRESSIONS.topic)
            },
            "redis": {
                "used_memory_bytes": int(memory["used_memory"]),
                "keys": int(await self._redis.dbsize()),
            },
        }

    async def redis_keys(self) -> dict[str, Any]:
        """Redis's keys by kind (``key_kind``), each kind's type and number: every key
        (SCAN, REDIS_SCAN_COUNT a call), or, past REDIS_SCAN_MAX_KEYS, the keys seen
        so far as a sample (SCAN walks the hash table, in no order of name), each
        kind's number scaled up to the whole."""
        total = int(await self._redis.dbsize())
        seen: Counter[str] = Counter()
        example: dict[str, bytes | str] = {}
        cursor = 0
        while True:
            cursor, keys = await self._redis.scan(cursor, count=REDIS_SCAN_COUNT)
            for key in keys:
                kind = key_kind(_text(key))
                seen[kind] += 1
                example.setdefault(kind, key)
            if cursor == 0 or seen.total() >= REDIS_SCAN_MAX_KEYS:
                break
        scanned = seen.total()
        scale = total / scanned if cursor != 0 and scanned else 1.0
        by_kind = {}
        for kind, n in seen.most_common():
            kind_type = await self._redis.type(example[kind])
            by_kind[kind] = {"type": _text(kind_type), "keys": round(n * scale)}
        return {"keys": total, "scanned": scanned, "sampled": cursor != 0, "by_kind": by_kind}


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value
