"""Finding the impression a click followed, through an index in Redis.

The impressions agent writes two keys per recorded impression, each living for the
offer's view-through window (what is left of it at write time):

- ``imptrack:aimp:<aimp_id>`` → ``<offer_id>:<pid>:<imp_id>``: lets a click naming
  an ``aimp_id`` be linked only to an impression of the same offer and affiliate,
  and gives it the affiliate's ``imp_id`` of that impression (empty when it had
  none; keys written before it was kept hold ``<offer_id>:<pid>`` only);
- ``imptrack:imp:<offer_id>:<pid>:<imp_id>`` → ``aimp_id``: the affiliate's own
  impression ID, for clicks that carry only that. An ``imp_id`` reused by the
  affiliate points at its latest impression.

The edge reads both in one round trip at click time, so the tracking URL's
``{aimp_id}`` is the linked impression, and its ``{impression_id}`` that
impression's ``imp_id`` when the click did not carry one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import orjson
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from app.ids import id_ms
from app.redis_replies import reply_text

BY_AIMP_ID = "aimp_id"
"""Linked by the click's ``aimp_id`` parameter."""
BY_IMP_ID = "imp_id"
"""Linked by the affiliate's ``imp_id`` for this offer and affiliate."""
NOT_FOUND = "none"
"""No impression of this offer and affiliate within its view-through window."""
UNAVAILABLE = "unavailable"
"""Redis did not answer in time; the click is tracked, without a link."""
LINKS = (BY_AIMP_ID, BY_IMP_ID, NOT_FOUND, UNAVAILABLE)


def aimp_key(aimp_id: str) -> str:
    return f"imptrack:aimp:{aimp_id}"


def imp_key(offer_id: int, pid: int, imp_id: str) -> str:
    return f"imptrack:imp:{offer_id}:{pid}:{imp_id}"


class Linkable(Protocol):
    """What the index keeps of a recorded impression: an Impression is one, and so is
    app.attribution.impressions.LinkedImpression, made without a faust Record."""

    @property
    def aimp_id(self) -> str: ...

    @property
    def offer_id(self) -> int: ...

    @property
    def pid(self) -> int: ...

    @property
    def imp_id(self) -> str | None: ...


@dataclass(frozen=True)
class Link:
    how: str
    aimp_id: str | None = None
    imp_id: str | None = None  # the linked impression's, as the affiliate sent it


# One script call for a whole batch, its keys, values and TTLs in one JSON array:
# two SETs per impression through redis-py's pipeline cost the impressions agent a
# tenth of its time in command building and reply parsing, and three script
# arguments per key still 15 us of its CPU per impression in redis-py's command
# packing (py-spy, bench.pipeline); one argument takes 2 us. The keys were never of
# one hash slot, so this needs one Redis (not a cluster) as the KEYS version did.
# TTLs reach Lua as numbers and Redis writes them back as integers.
_INDEX = """
local entries = cjson.decode(ARGV[1])
for i = 1, #entries, 3 do
  redis.call('SET', entries[i], entries[i + 1], 'PX', entries[i + 2])
end
return #entries / 3
"""


@cache
def _index_script(client: aioredis.Redis) -> AsyncScript:
    return client.register_script(_INDEX)


async def index_impressions(
    client: aioredis.Redis, recorded: Iterable[tuple[Linkable, int]], now_ms: int
) -> int:
    """Index recorded impressions, each with its offer's view-through window in
    seconds; return how many were indexed (an impression past its window is not)."""
    entries: list[str | int] = []
    indexed = 0
    for impression, window_seconds in recorded:
        aimp_id = impression.aimp_id
        ttl_ms = id_ms(aimp_id) + window_seconds * 1000 - now_ms
        if ttl_ms <= 0:
            continue
        offer_id, pid, imp_id = impression.offer_id, impression.pid, impression.imp_id
        entries += (aimp_key(aimp_id), f"{offer_id}:{pid}:{imp_id or ''}", ttl_ms)
        if imp_id:
            entries += (imp_key(offer_id, pid, imp_id), aimp_id, ttl_ms)
        indexed += 1
    if entries:
        await _index_script(client)(args=[orjson.dumps(entries)])
    return indexed


async def find_impression(
    client: aioredis.Redis, offer_id: int, pid: int, aimp_id: str | None, imp_id: str | None
) -> Link:
    """The impression a click on ``offer_id`` by ``pid`` followed: by ``aimp_id`` when
    it names one of this offer and affiliate, else by ``imp_id``."""
    keys = []
    if aimp_id:
        keys.append(aimp_key(aimp_id))
    if imp_id:
        keys.append(imp_key(offer_id, pid, imp_id))
    if not keys:
        return Link(NOT_FOUND)
    try:
        found = await client.mget(keys)
    except (RedisError, TimeoutError):
        return Link(UNAVAILABLE)
    if aimp_id:
        owner = found.pop(0)
        if owner is not None:
            # offer:pid, then the imp_id (which may hold colons itself).
            offer_pid_imp = reply_text(owner).split(":", 2)
            if offer_pid_imp[:2] == [str(offer_id), str(pid)]:
                linked_imp_id = offer_pid_imp[2] if len(offer_pid_imp) == 3 else ""
                return Link(BY_AIMP_ID, aimp_id, linked_imp_id or None)
    if imp_id and found[0] is not None:
        return Link(BY_IMP_ID, reply_text(found[0]), imp_id)
    return Link(NOT_FOUND)
