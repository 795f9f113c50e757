"""The delivery schedule in Redis: what is due, who is delivering it, what happened.

Every forward task goes through one sorted set, scored by the time it is next due:
a new task is due at once, a failed one when its backoff ends. A forwarder process
*claims* due tasks by moving their score to the end of a lease; if it dies
mid-delivery the lease runs out and any forwarder process claims the task again. All
of this lives in Redis, so pending retries survive restarts and several forwarder
processes share one schedule.

Each step is one Lua script, so it is atomic: a task is scheduled at most once per
``aimp_id`` (or conversion revision) and destination (replays are recognised), a claim respects the
destination host's concurrency cap and circuit breaker, and finishing an attempt
reschedules or removes the task *and* appends the attempt to the delivery log in
one step. The log is a Redis stream read by :class:`~app.forwarding.outbox.DeliveryLogShipper`,
which publishes it to Kafka: nothing is written to Kafka between two Redis states
that a crash could split.

Times are Redis server time, so processes with skewed clocks agree on what is due.
"""

from __future__ import annotations

import hashlib
import secrets
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

DUE = PREFIX + "due"  # sorted set: task id -> due time (or end of lease), ms
TASKS = PREFIX + "tasks"  # hash: task id -> {"task": ForwardTask, "attempts": n}
CLAIMS = PREFIX + "claims"  # hash: task id -> token of the claim delivering it
LOG = PREFIX + "log"  # stream: delivery attempts not yet published to Kafka
STATS = PREFIX + "stats"  # hash: counters shared by all forwarder processes
LOG_GROUP = "shippers"

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

# KEYS: due, tasks. ARGV: prefix, dedup seconds, then (id, task json) pairs.
_ENQUEUE = (
    _NOW
    + """
local added = 0
for i = 3, #ARGV, 2 do
  local id = ARGV[i]
  if redis.call('HEXISTS', KEYS[2], id) == 0
     and redis.call('SET', ARGV[1] .. 'forwarded:' .. id, '1', 'NX', 'EX', ARGV[2]) then
    redis.call('HSET', KEYS[2], id, ARGV[i + 1])
    redis.call('ZADD', KEYS[1], now, id)
    added = added + 1
  end
end
return added
"""
)

# KEYS: due, tasks, claims, stats. ARGV: prefix, want, scan, lease ms, host cap,
# breaker failures, busy delay ms, token. Returns (id, task json) pairs.
_CLAIM = (
    _NOW
    + """
local prefix, want, scan = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local lease, cap, threshold = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local busy_delay, token = tonumber(ARGV[7]), ARGV[8]
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, scan)
local out, hosts, claimed = {}, {}, 0
for _, id in ipairs(ids) do
  if claimed >= want then break end
  local host = string.match(id, '^([^|]*)|')
  local h = hosts[host]
  if not h then
    local busy = prefix .. 'busy:' .. host
    redis.call('ZREMRANGEBYSCORE', busy, '-inf', now)
    local b = redis.call('HMGET', prefix .. 'breaker:' .. host, 'failures', 'open_until')
    local failures, open_until = tonumber(b[1]) or 0, tonumber(b[2]) or 0
    local limit = cap
    if failures >= threshold then limit = 1 end
    h = {busy = busy, n = redis.call('ZCARD', busy), limit = limit, open_until = open_until}
    hosts[host] = h
  end
  if h.open_until > now then
    -- Breaker open: held back without using an attempt.
    redis.call('ZADD', KEYS[1], h.open_until, id)
    redis.call('HINCRBY', KEYS[4], 'deferred', 1)
  elseif h.n >= h.limit then
    -- Host at its cap (or half-open with its one probe out): a little later, so
    -- tasks for other hosts behind this one are not starved.
    redis.call('ZADD', KEYS[1], now + busy_delay, id)
  else
    local task = redis.call('HGET', KEYS[2], id)
    if task then
      redis.call('ZADD', KEYS[1], now + lease, id)
      redis.call('ZADD', h.busy, now + lease, id)
      redis.call('HSET', KEYS[3], id, token)
      h.n = h.n + 1
      claimed = claimed + 1
      out[#out + 1] = id
      out[#out + 1] = task
    else
      redis.call('ZREM', KEYS[1], id)
    end
  end
end
return out
"""
)

# KEYS: due, tasks, claims, log, stats. ARGV: prefix, id, token, host, retry delay
# ms (-1: finished), task json, attempt record json, breaker effect (ok|fail|-),
# breaker failures, breaker open ms.
_FINISH = (
    _NOW
    + """
local prefix, id, host = ARGV[1], ARGV[2], ARGV[4]
if redis.call('HGET', KEYS[3], id) ~= ARGV[3] then return 0 end
redis.call('HDEL', KEYS[3], id)
redis.call('ZREM', prefix .. 'busy:' .. host, id)
local delay = tonumber(ARGV[5])
if delay >= 0 then
  redis.call('ZADD', KEYS[1], now + delay, id)
  redis.call('HSET', KEYS[2], id, ARGV[6])
else
  redis.call('ZREM', KEYS[1], id)
  redis.call('HDEL', KEYS[2], id)
end
local breaker = prefix .. 'breaker:' .. host
if ARGV[8] == 'ok' then
  redis.call('DEL', breaker)
elseif ARGV[8] == 'fail' then
  local failures = redis.call('HINCRBY', breaker, 'failures', 1)
  if failures >= tonumber(ARGV[9]) then
    local open_until = tonumber(redis.call('HGET', breaker, 'open_until')) or 0
    if open_until <= now then redis.call('HINCRBY', KEYS[5], 'breaker_opened', 1) end
    redis.call('HSET', breaker, 'open_until', now + tonumber(ARGV[10]))
  end
  redis.call('EXPIRE', breaker, 86400)
end
redis.call('XADD', KEYS[4], '*', 'r', ARGV[7])
return 1
"""
)


def origin(url: str) -> str:
    """``scheme://host:port`` of a URL: the unit of concurrency caps and breakers."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or (443 if scheme == "https" else 80)
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


def delivered_item(task: Delivery) -> str:
    """What a delivery tells of: an impression (its ``aimp_id``), or one revision of a
    conversion (``conversion_id:revision``, so each status change is a delivery of
    its own and a replay of one is not)."""
    if isinstance(task, AffiliatePostbackTask):
        return f"{task.conversion_id}:{task.revision}"
    return task.aimp_id


def task_id(task: Delivery) -> str:
    """Names one delivery: its host (for caps and breakers), what it tells of and
    its destination."""
    destination = hashlib.blake2b(task.destination.encode(), digest_size=6).hexdigest()
    return f"{origin(task.url)}|{delivered_item(task)}|{destination}"


def _stored(task: Delivery, attempts: int) -> bytes:
    return orjson.dumps({"task": task.asdict(), "attempts": attempts})


def _delivery(data: dict[str, Any]) -> Delivery:
    # Tasks scheduled before deliveries had kinds are impressions.
    task: Delivery = _TASK_RECORDS[data.get("kind", IMPRESSION)].from_data(data)
    return task


@dataclass(frozen=True)
class Claim:
    """A due task this process may now deliver, until its lease runs out."""

    id: str
    token: str
    task: Delivery
    attempts: int  # attempts made before this one

    @property
    def host(self) -> str:
        return self.id.split("|", 1)[0]


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
        busy_delay_ms: int = 100,
    ) -> None:
        self.client = client
        self.dedup_seconds = dedup_seconds
        self.host_concurrency = host_concurrency
        self.breaker_failures = breaker_failures
        self.breaker_ms = int(breaker_seconds * 1000)
        self.lease_ms = int(lease_seconds * 1000)
        self.busy_delay_ms = busy_delay_ms
        self._enqueue = client.register_script(_ENQUEUE)
        self._claim = client.register_script(_CLAIM)
        self._finish = client.register_script(_FINISH)

    async def enqueue(self, tasks: list[Delivery]) -> int:
        """Schedule tasks due now; return how many were new (not replays)."""
        if not tasks:
            return 0
        args: list[Any] = [PREFIX, self.dedup_seconds]
        for task in tasks:
            args += [task_id(task), _stored(task, 0)]
        return int(await self._enqueue(keys=[DUE, TASKS], args=args))

    async def claim(self, want: int, scan: int | None = None) -> list[Claim]:
        token = secrets.token_hex(8)
        reply = await self._claim(
            keys=[DUE, TASKS, CLAIMS, STATS],
            args=[
                PREFIX,
                want,
                scan or max(100, want * 4),
                self.lease_ms,
                self.host_concurrency,
                self.breaker_failures,
                self.busy_delay_ms,
                token,
            ],
        )
        claims = []
        for n in range(0, len(reply), 2):
            stored = orjson.loads(reply[n + 1])
            claims.append(
                Claim(
                    reply_text(reply[n]),
                    token,
                    _delivery(stored["task"]),
                    int(stored["attempts"]),
                )
            )
        return claims

    async def finish(
        self,
        claim: Claim,
        record: bytes,
        *,
        retry_delay_ms: int | None,
        breaker: str,
    ) -> bool:
        """Record an attempt: reschedule after ``retry_delay_ms`` or remove the task,
        update the host's breaker (``ok``, ``fail`` or ``-``), log the attempt.

        False when the claim was no longer ours (its lease ran out and another
        claim took the task): nothing is changed then.
        """
        stored = _stored(claim.task, claim.attempts + 1)
        done = await self._finish(
            keys=[DUE, TASKS, CLAIMS, LOG, STATS],
            args=[
                PREFIX,
                claim.id,
                claim.token,
                claim.host,
                -1 if retry_delay_ms is None else retry_delay_ms,
                stored,
                record,
                breaker,
                self.breaker_failures,
                self.breaker_ms,
            ],
        )
        return bool(done)

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
            pipe.zcard(DUE)
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
