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

from app.events.records import AFFILIATE_POSTBACK, IMPRESSION, AffiliatePostbackTask, ForwardTask
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
LOG_GROUP = "shippers"
DUE = PREFIX + "due"
"""Before the schedule was kept per host: one sorted set of every task id. Each
:meth:`DeliverySchedule.settle` moves up to :data:`UPGRADE_BATCH` of its entries into
their hosts' sets, so a schedule written by an older forwarder is delivered."""
UPGRADE_BATCH = 500

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# place(prefix, hosts, host, at): the host comes due at ``at`` or sooner.
# follow(prefix, hosts, host): the host comes due with its first task (due, or
# claimed: its lease's end), or leaves the index with its last task.
_HOST_INDEX = """
local function place(prefix, hosts, host, at)
  local score = tonumber(redis.call('ZSCORE', hosts, host))
  if not score or score > at then redis.call('ZADD', hosts, at, host) end
end
local function follow(prefix, hosts, host)
  local first = redis.call('ZRANGE', prefix .. 'due:' .. host, 0, 0, 'WITHSCORES')
  if first[1] then
    redis.call('ZADD', hosts, first[2], host)
  else
    redis.call('ZREM', hosts, host)
  end
end
"""

# KEYS: hosts, tasks. ARGV: prefix, dedup seconds, then (id, host, task json) triples.
_ENQUEUE = (
    _NOW
    + _HOST_INDEX
    + """
local prefix, added = ARGV[1], 0
for i = 3, #ARGV, 3 do
  local id, host = ARGV[i], ARGV[i + 1]
  if redis.call('HEXISTS', KEYS[2], id) == 0
     and redis.call('SET', prefix .. 'forwarded:' .. id, '1', 'NX', 'EX', ARGV[2]) then
    redis.call('HSET', KEYS[2], id, ARGV[i + 2])
    redis.call('ZADD', prefix .. 'due:' .. host, now, id)
    place(prefix, KEYS[1], host, now)
    added = added + 1
  end
end
return added
"""
)

# KEYS: hosts, tasks, claims, log, stats, legacy due. ARGV: prefix, breaker failures,
# breaker open ms, the number of attempts to record, then each attempt's id, claim
# token, host, retry delay ms (-1: finished), task json (for a retry), attempt record
# json and breaker effect (ok|fail|-); then how many tasks to claim, how many due
# hosts to look at for them, lease ms, host cap, the new claims' token and how many
# legacy entries to move. Returns {1 or 0 for each attempt (0: its claim was no
# longer ours, nothing changed), (id, task json) pairs claimed}.
_SETTLE = (
    _NOW
    + _HOST_INDEX
    + """
local prefix = ARGV[1]
local threshold, open_ms = tonumber(ARGV[2]), tonumber(ARGV[3])
local finished, touched = {}, {}
local i = 5
for k = 1, tonumber(ARGV[4]) do
  local id, host, effect = ARGV[i], ARGV[i + 2], ARGV[i + 6]
  if redis.call('HGET', KEYS[3], id) == ARGV[i + 1] then
    local due = prefix .. 'due:' .. host
    redis.call('HDEL', KEYS[3], id)
    redis.call('ZREM', prefix .. 'busy:' .. host, id)
    local delay = tonumber(ARGV[i + 3])
    if delay >= 0 then
      redis.call('ZADD', due, now + delay, id)
      redis.call('HSET', KEYS[2], id, ARGV[i + 4])
    else
      redis.call('ZREM', due, id)
      redis.call('HDEL', KEYS[2], id)
    end
    local breaker = prefix .. 'breaker:' .. host
    if effect == 'ok' then
      redis.call('DEL', breaker)
    elseif effect == 'fail' then
      local failures = redis.call('HINCRBY', breaker, 'failures', 1)
      if failures >= threshold then
        local open_until = tonumber(redis.call('HGET', breaker, 'open_until')) or 0
        if open_until <= now then redis.call('HINCRBY', KEYS[5], 'breaker_opened', 1) end
        redis.call('HSET', breaker, 'open_until', now + open_ms)
      end
      redis.call('EXPIRE', breaker, 86400)
    end
    redis.call('XADD', KEYS[4], '*', 'r', ARGV[i + 5])
    touched[host] = true
    finished[k] = 1
  else
    finished[k] = 0
  end
  i = i + 7
end
-- A slot freed: the host's first due task may go at once.
for host in pairs(touched) do follow(prefix, KEYS[1], host) end

local want, scan = tonumber(ARGV[i]), tonumber(ARGV[i + 1])
local lease, cap, token = tonumber(ARGV[i + 2]), tonumber(ARGV[i + 3]), ARGV[i + 4]
local legacy = redis.call('ZRANGE', KEYS[6], 0, tonumber(ARGV[i + 5]) - 1, 'WITHSCORES')
for n = 1, #legacy, 2 do
  local id, score = legacy[n], tonumber(legacy[n + 1])
  local host = string.match(id, '^([^|]*)|')
  redis.call('ZADD', prefix .. 'due:' .. host, score, id)
  place(prefix, KEYS[1], host, score)
  redis.call('ZREM', KEYS[6], id)
end

local out, claimed = {}, 0
if want > 0 then
  local hosts = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, scan)
  for _, host in ipairs(hosts) do
    if claimed >= want then break end
    local due, busy = prefix .. 'due:' .. host, prefix .. 'busy:' .. host
    -- Claims whose lease ran out (their forwarder died) no longer hold a slot.
    redis.call('ZREMRANGEBYSCORE', busy, '-inf', now)
    local b = redis.call('HMGET', prefix .. 'breaker:' .. host, 'failures', 'open_until')
    local failures, open_until = tonumber(b[1]) or 0, tonumber(b[2]) or 0
    if open_until > now then
      -- Breaker open: its due tasks are held back without using an attempt.
      redis.call('HINCRBY', KEYS[5], 'deferred', redis.call('ZCOUNT', due, '-inf', now))
      redis.call('ZADD', KEYS[1], open_until, host)
    else
      -- Half-open (failures at the threshold, the breaker's time over): one probe.
      local limit = cap
      if failures >= threshold then limit = 1 end
      local free = limit - redis.call('ZCARD', busy)
      if free > 0 then
        local ids = redis.call(
          'ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, math.min(free, want - claimed)
        )
        for _, id in ipairs(ids) do
          local task = redis.call('HGET', KEYS[2], id)
          if task then
            redis.call('ZADD', due, now + lease, id)
            redis.call('ZADD', busy, now + lease, id)
            redis.call('HSET', KEYS[3], id, token)
            claimed = claimed + 1
            free = free - 1
            out[#out + 1] = id
            out[#out + 1] = task
          else
            redis.call('ZREM', due, id)
          end
        end
      end
      if free > 0 then
        follow(prefix, KEYS[1], host)
      else
        -- At its cap: looked at again when a claim of it is recorded (which
        -- places it anew) or, at the latest, when the first lease ends.
        local first = redis.call('ZRANGE', due, 0, 0, 'WITHSCORES')
        local lease_end = redis.call('ZRANGE', busy, 0, 0, 'WITHSCORES')
        if not first[1] then
          redis.call('ZREM', KEYS[1], host)
        else
          redis.call('ZADD', KEYS[1], math.max(tonumber(first[2]), tonumber(lease_end[2])), host)
        end
      end
    end
  end
end
return {finished, out}
"""
)


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL: the unit of concurrency caps and breakers."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


TaskFields = Mapping[str, Any]
"""A delivery's fields as its record's ``asdict()`` gives them (``kind`` says which
record; none: an impression): what the schedule stores, and what an envelope of
forward tasks holds, so its tasks are scheduled with no record made of each."""


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


def _task_id(host: str, fields: TaskFields) -> str:
    destination = hashlib.blake2b(fields["destination"].encode(), digest_size=6).hexdigest()
    return f"{host}|{delivered_item(fields)}|{destination}"


def _stored(fields: TaskFields, attempts: int) -> bytes:
    return orjson.dumps({"task": fields, "attempts": attempts})


def _delivery(fields: TaskFields) -> Delivery:
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
    def kind(self) -> str:
        # Tasks scheduled before deliveries had kinds are impressions.
        return str(self.fields.get("kind", IMPRESSION))

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
        self._enqueue = client.register_script(_ENQUEUE)
        self._settle = client.register_script(_SETTLE)

    async def enqueue(self, tasks: Sequence[Delivery | TaskFields]) -> int:
        """Schedule tasks due now in one script; return how many were new (not replays)."""
        return await self.enqueue_groups([tasks])

    async def enqueue_groups(self, groups: Sequence[Sequence[Delivery | TaskFields]]) -> int:
        """Schedule each group of tasks (an envelope's) with a script of its own, all
        in one round trip; return how many were new (not replays)."""
        groups = [group for group in groups if group]
        if not groups:
            return 0
        async with self.client.pipeline(transaction=False) as pipe:
            for group in groups:
                args: list[Any] = [PREFIX, self.dedup_seconds]
                for task in group:
                    fields = task_fields(task)
                    host = origin(fields["url"])
                    args += [_task_id(host, fields), host, _stored(fields, 0)]
                await self._enqueue(keys=[HOSTS, TASKS], args=args, client=pipe)
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
