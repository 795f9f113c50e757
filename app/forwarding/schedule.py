"""The delivery schedule in Redis: what is due, who is delivering it, what happened.

Each destination host (``scheme://host:port``, the unit of concurrency caps and
circuit breakers) has a sorted set of its tasks, scored by the time each is next
due: a new task is due at once, a failed one when its backoff ends. A forwarder
process *claims* due tasks by moving their score to the end of a lease; if it dies
mid-delivery the lease runs out and any forwarder process claims the task again. An
index of hosts, scored by when each next has a task it may hand out, says where to
look: a host at its cap or behind an open breaker is not looked at again until a
slot frees, a lease ends or the breaker closes, so its waiting tasks cost nothing
however many there are. All of this lives in Redis, so pending retries survive
restarts and several forwarder processes share one schedule.

Each step is one Lua script, so it is atomic: a task is scheduled at most once per
``aimp_id`` (or conversion revision) and destination (replays are recognised), a
claim respects the destination host's concurrency cap and circuit breaker, and
recording an attempt reschedules or removes the task *and* appends the attempt to
the delivery log in one step. The forwarder records the attempts it has made and
claims more in one script call (:meth:`DeliverySchedule.settle`), and schedules an
envelope of tasks per script, a batch of envelopes a round trip. The log is a Redis
stream read by :class:`~app.forwarding.outbox.DeliveryLogShipper`, which publishes
it to Kafka: nothing is written to Kafka between two Redis states that a crash could
split.

Times are Redis server time, so processes with skewed clocks agree on what is due.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from app.events.provenance import Source
from app.events.records import AFFILIATE_POSTBACK, IMPRESSION, AffiliatePostbackTask, ForwardTask
from app.forwarding.schedule_scripts import ENQUEUE, SETTLE
from app.redis_replies import reply_text

Delivery = ForwardTask | AffiliatePostbackTask
"""What the schedule delivers: an impression to its advertiser, or a conversion's
status to its affiliate. Both go through the same schedule, caps, breakers and log."""
_TASK_RECORDS: dict[str, type[ForwardTask] | type[AffiliatePostbackTask]] = {
    IMPRESSION: ForwardTask,
    AFFILIATE_POSTBACK: AffiliatePostbackTask,
}

PREFIX = "imptrack:{fwd}:"
"""Every key of the schedule; the ``{fwd}`` hash tag keeps them in one cluster slot."""

HOSTS = PREFIX + "hosts"  # sorted set: host -> when it next has a task to hand out, ms
# PREFIX + "due:<host>": sorted set: task id -> due time (or end of lease), ms
# PREFIX + "busy:<host>": sorted set: task id -> end of lease, of the host's claims
# PREFIX + "breaker:<host>": hash: consecutive failures, open_until (ms)
TASKS = PREFIX + "tasks"  # hash: task id -> {"task": its fields, "attempts": n}
CLAIMS = PREFIX + "claims"  # hash: task id -> token of the claim delivering it
LOG = PREFIX + "log"  # stream: delivery attempts not yet published to Kafka
STATS = PREFIX + "stats"  # hash: counters shared by all forwarder processes
SOURCES = PREFIX + "sources"
"""hash: a source partition (``<topic>:<partition>``) -> ``<offset>:<ms>``, the highest
offset of it scheduled and its impressions' time (see :class:`TaskGroup`)."""
LOG_GROUP = "shippers"
DUE = PREFIX + "due"
"""Before the schedule was kept per host: one sorted set of every task id. Each
:meth:`DeliverySchedule.settle` moves up to :data:`UPGRADE_BATCH` of its entries into
their hosts' sets, so a schedule written by an older forwarder is delivered."""
UPGRADE_BATCH = 500


UNREADABLE_ORIGIN = "unreadable://"
"""The origin of every URL with no readable host or port: such a task is still
scheduled (a parse error must not stop the forwarder's partition), and the courier
refuses its URL, which ends it as failed and dead-lettered."""


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL: the unit of concurrency caps and breakers."""
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:  # a port out of range or no number, a broken IPv6 address
        return UNREADABLE_ORIGIN
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


TaskFields = Mapping[str, Any]
"""A delivery's fields as its record's ``asdict()`` gives them (``kind`` says which
record; none: an impression): what the schedule stores, and what an envelope of
forward tasks holds, so its tasks are scheduled with no record made of each."""


NEW_SOURCE_MS = 30_000
"""A record at or below its source's mark is a replay unless its impressions are this
much newer than the mark's: then the source topic was made anew and its offsets
started again from 0 (a Kafka cluster wiped with Redis kept). A replayed record was
appended before the mark's, so its impressions are older than the mark's, or newer
only by how long an edge may take to have an envelope appended (its broker ack
timeout, seconds)."""


@dataclass(frozen=True)
class SourceMark:
    """The record an envelope of forward tasks was made from, and when the
    impressions in it were accepted (its envelope key's time)."""

    source: Source
    accepted_ms: int


@dataclass(frozen=True)
class TaskGroup:
    """Tasks scheduled in one script: an envelope's forward tasks, named by their
    source, or a batch of affiliate postbacks.

    With a source, a replay is recognised by it: the forwarder schedules a
    partition's envelopes in order, and the worker writes them in the order of their
    sources from its last commit on (each its source's partition's), so an envelope
    whose source offset is at or below the highest scheduled of its partition was
    scheduled already, and is dropped. That costs one field per source partition in
    Redis, however many impressions pass. Without one (affiliate postbacks, forward
    tasks written before sources were), each task is remembered by a ``forwarded:``
    key for the dedup horizon."""

    tasks: Sequence[Delivery | TaskFields]
    source: SourceMark | None = None


def _source_args(mark: SourceMark | None) -> list[Any]:
    if mark is None:
        return ["", 0, 0, NEW_SOURCE_MS]
    source = mark.source
    return [f"{source.topic}:{source.partition}", source.offset, mark.accepted_ms, NEW_SOURCE_MS]


def task_fields(task: Delivery | TaskFields) -> TaskFields:
    return task.asdict() if isinstance(task, ForwardTask | AffiliatePostbackTask) else task


def delivered_item(task: Delivery | TaskFields) -> str:
    """What a delivery tells of: an impression (its ``aimp_id``), or one revision of a
    conversion (``conversion_id:revision``, so each status change is a delivery of
    its own and a replay of one is not)."""
    fields = task_fields(task)
    if fields.get("kind") == AFFILIATE_POSTBACK:
        return f"{fields['conversion_id']}:{fields['revision']}"
    return str(fields["aimp_id"])


def task_id(task: Delivery | TaskFields) -> str:
    """Names one delivery: its host (for caps and breakers), what it tells of and
    its destination."""
    fields = task_fields(task)
    return _task_id(origin(fields["url"]), fields)


REPLAY_OF = "replay_of"
"""A task sent again by ``imptrack deliveries replay`` names the dead letter it
replays (app/forwarding/replay.py): a delivery of its own, so the original's dedup
key does not drop it, while the same dead letter replayed twice is one."""
ATTEMPTS_BEFORE = "attempts_before"
"""A replayed task's attempts made before it: its attempts are numbered on from
there (each is a row of its own in DuckDB), with a budget of its own."""


def _task_id(host: str, fields: TaskFields) -> str:
    destination = hashlib.blake2b(fields["destination"].encode(), digest_size=6).hexdigest()
    replay = fields.get(REPLAY_OF)
    suffix = "" if not replay else f"|replay:{replay}"
    return f"{host}|{delivered_item(fields)}|{destination}{suffix}"


def _stored(fields: TaskFields, attempts: int) -> bytes:
    return orjson.dumps({"task": fields, "attempts": attempts})


def _delivery(fields: TaskFields) -> Delivery:
    # Tasks scheduled before deliveries had kinds are impressions.
    task: Delivery = _TASK_RECORDS[fields.get("kind", IMPRESSION)].from_data(dict(fields))
    return task


@dataclass(frozen=True, eq=False)
class Claim:
    """A due task this process may now deliver, until its lease runs out."""

    id: str
    token: str
    fields: TaskFields  # the task's, as stored
    attempts: int  # attempts made before this one

    @property
    def host(self) -> str:
        return self.id.split("|", 1)[0]

    @property
    def task(self) -> Delivery:
        """The task as its record (made on each call: the delivery loop reads
        :attr:`fields`)."""
        return _delivery(self.fields)


@dataclass(frozen=True)
class Attempted:
    """An attempt made on a claim, to record: the task is rescheduled after
    ``retry_delay_ms`` or removed (None), the host's breaker told ``ok``, ``fail`` or
    ``-``, and ``record`` appended to the delivery log."""

    claim: Claim
    record: bytes
    retry_delay_ms: int | None
    breaker: str


@dataclass(frozen=True)
class LogEntry:
    id: str
    record: bytes


class DeliverySchedule:
    def __init__(
        self,
        client: aioredis.Redis,
        *,
        dedup_seconds: int,
        host_concurrency: int,
        breaker_failures: int,
        breaker_seconds: float,
        lease_seconds: float,
    ) -> None:
        self.client = client
        self.dedup_seconds = dedup_seconds
        self.host_concurrency = host_concurrency
        self.breaker_failures = breaker_failures
        self.breaker_ms = int(breaker_seconds * 1000)
        self.lease_ms = int(lease_seconds * 1000)
        self._enqueue = client.register_script(ENQUEUE)
        self._settle = client.register_script(SETTLE)

    async def enqueue(self, tasks: Sequence[Delivery | TaskFields]) -> int:
        """Schedule tasks due now in one script; return how many were new (not replays)."""
        return await self.enqueue_groups([TaskGroup(tasks)])

    async def enqueue_groups(self, groups: Sequence[TaskGroup]) -> int:
        """Schedule each group of tasks (an envelope's) with a script of its own, all
        in one round trip, in order; return how many were new (not replays)."""
        groups = [group for group in groups if group.tasks]
        if not groups:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for group in groups:
                args: list[Any] = [PREFIX, self.dedup_seconds, *_source_args(group.source)]
                for task in group.tasks:
                    fields = task_fields(task)
                    host = origin(fields["url"])
                    made = int(fields.get(ATTEMPTS_BEFORE) or 0)
                    args += [_task_id(host, fields), host, _stored(fields, made)]
                await self._enqueue(keys=[HOSTS, TASKS, SOURCES], args=args, client=pipe)
                # Naming and encoding a batch's tasks takes a while (a backlog of
                # envelopes: hundreds of thousands): deliveries go on meanwhile.
                await asyncio.sleep(0)
            added = await pipe.execute()
        return sum(int(n) for n in added)

    async def settle(
        self, attempts: Sequence[Attempted], want: int, scan: int | None = None
    ) -> tuple[list[bool], list[Claim]]:
        """In one script: record ``attempts`` (see :class:`Attempted`), then claim up
        to ``want`` due tasks from the first ``scan`` hosts with tasks due (four times
        ``want``, at least 100, unless said), oldest due first. A host's slots freed
        by the attempts are free for the claim.

        Returns whether each attempt was recorded (False: its claim was no longer
        ours, its lease having run out and another claim taken the task; nothing was
        changed for it), and the claims.
        """
        args: list[Any] = [PREFIX, self.breaker_failures, self.breaker_ms, len(attempts)]
        for done in attempts:
            claim = done.claim
            retrying = done.retry_delay_ms is not None
            args += [
                claim.id,
                claim.token,
                claim.host,
                -1 if done.retry_delay_ms is None else done.retry_delay_ms,
                _stored(claim.fields, claim.attempts + 1) if retrying else b"",
                done.record,
                done.breaker,
            ]
        token = secrets.token_hex(8)
        args += [want, scan or max(100, want * 4), self.lease_ms, self.host_concurrency]
        args += [token, UPGRADE_BATCH]
        finished, claimed = await self._settle(
            keys=[HOSTS, TASKS, CLAIMS, LOG, STATS, DUE], args=args
        )
        claims = []
        for n in range(0, len(claimed), 2):
            stored = orjson.loads(claimed[n + 1])
            claims.append(
                Claim(reply_text(claimed[n]), token, stored["task"], int(stored["attempts"]))
            )
        return [bool(flag) for flag in finished], claims

    async def claim(self, want: int, scan: int | None = None) -> list[Claim]:
        """Claim up to ``want`` due tasks (:meth:`settle` with no attempts)."""
        _, claims = await self.settle([], want, scan)
        return claims

    async def finish(
        self,
        claim: Claim,
        record: bytes,
        *,
        retry_delay_ms: int | None,
        breaker: str,
    ) -> bool:
        """Record one attempt (:meth:`settle` claiming nothing); False when the claim
        was no longer ours."""
        (finished,), _ = await self.settle([Attempted(claim, record, retry_delay_ms, breaker)], 0)
        return finished

    # -- the delivery log (Redis stream → Kafka) --------------------------------

    async def ensure_log_group(self) -> None:
        try:
            await self.client.xgroup_create(LOG, LOG_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read_log(
        self, consumer: str, count: int, block_ms: int, pending: bool = False
    ) -> list[LogEntry]:
        """New entries for ``consumer``, or (``pending``) the ones it read in an
        earlier life and never acknowledged."""
        reply: Any = await self.client.xreadgroup(
            LOG_GROUP,
            consumer,
            {LOG: "0" if pending else ">"},
            count=count,
            block=None if pending else block_ms,
        )
        return [
            LogEntry(reply_text(entry_id), fields[b"r"])
            for _, entries in reply or []
            for entry_id, fields in entries
            if fields
        ]

    async def adopt_stale_log(self, consumer: str, min_idle_ms: int, count: int) -> list[LogEntry]:
        """Entries another shipper read and never acknowledged (it died)."""
        reply: Any = await self.client.xautoclaim(
            LOG, LOG_GROUP, consumer, min_idle_ms, count=count
        )
        return [
            LogEntry(reply_text(entry_id), fields[b"r"]) for entry_id, fields in reply[1] if fields
        ]

    async def ack_log(self, ids: list[str]) -> None:
        if ids:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xack(LOG, LOG_GROUP, *ids)
                pipe.xdel(LOG, *ids)
                await pipe.execute()

    async def open_breakers(self) -> int:
        """Destination hosts whose circuit breaker is open now, by Redis's clock (the
        one the claim script judges by)."""
        seconds, micros = await self.client.time()
        now_ms = seconds * 1000 + micros // 1000
        keys = [key async for key in self.client.scan_iter(match=PREFIX + "breaker:*", count=500)]
        if not keys:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hget(key, "open_until")
            until = await pipe.execute()
        return sum(1 for value in until if value is not None and int(value) > now_ms)

    async def status(self) -> dict[str, Any]:
        async with self.client.pipeline(transaction=False) as pipe:
            pipe.hlen(TASKS)
            pipe.hlen(CLAIMS)
            pipe.xlen(LOG)
            pipe.hgetall(STATS)
            scheduled, claimed, unshipped, stats = await pipe.execute()
        return {
            "scheduled": int(scheduled),
            "in_flight": int(claimed),
            "log_unshipped": int(unshipped),
            **{reply_text(k): int(v) for k, v in stats.items()},
        }
