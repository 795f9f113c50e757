"""The delivery schedule's Lua scripts (app.forwarding.schedule says what each
step guarantees). Each runs atomically in Redis; keys other than ``KEYS`` are built
from the schedule's prefix, whose ``{fwd}`` hash tag keeps them in one cluster slot.
"""

from __future__ import annotations

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

# KEYS: hosts, tasks, sources. ARGV: prefix, dedup seconds, the group's source ('':
# none), its offset and its impressions' time (ms), how much newer than the source's
# mark a record at or below its offset must be to start a new mark (ms), then (id,
# host, task json) triples.
#
# A group with a source is a replay when its offset is at or below the highest
# offset of its source scheduled so far (the mark): the forwarder reads a partition
# in order, and the worker writes a partition's envelopes in the order of their
# sources, from its last commit on. Only a record far newer than the mark, at or
# below its offset, is no replay: the source topic was made anew (offsets from 0).
# A group with no source (affiliate postbacks, forward tasks written before sources
# were) is deduplicated per task by a forwarded: key.
ENQUEUE = (
    _NOW
    + _HOST_INDEX
    + """
local prefix, added = ARGV[1], 0
local source = ARGV[3]
local by_source = source ~= ''
if by_source then
  local offset, ms = tonumber(ARGV[4]), tonumber(ARGV[5])
  local mark = redis.call('HGET', KEYS[3], source)
  if mark then
    local sep = string.find(mark, ':', 1, true)
    local marked_offset = tonumber(string.sub(mark, 1, sep - 1))
    local marked_ms = tonumber(string.sub(mark, sep + 1))
    if offset <= marked_offset and ms <= marked_ms + tonumber(ARGV[6]) then
      return 0
    end
  end
  redis.call('HSET', KEYS[3], source, ARGV[4] .. ':' .. ARGV[5])
end
for i = 7, #ARGV, 3 do
  local id, host = ARGV[i], ARGV[i + 1]
  local new = redis.call('HEXISTS', KEYS[2], id) == 0
  if new and not by_source then
    new = redis.call('SET', prefix .. 'forwarded:' .. id, '1', 'NX', 'EX', ARGV[2])
  end
  if new then
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
SETTLE = (
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
