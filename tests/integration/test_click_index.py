"""The Redis index clicks are linked through (app.attribution.click_links), against a real Redis:
what the impressions agent writes in one script call is what a click finds."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from app.attribution.click_links import (
    BY_AIMP_ID,
    BY_IMP_ID,
    NOT_FOUND,
    aimp_key,
    find_impression,
    imp_key,
    index_impressions,
)
from app.events.records import Impression
from app.ids import IdGenerator
from tests.ids import TEST_SEAL

pytestmark = pytest.mark.integration

NOW_MS = 1_800_000_000_000


def _impression(at_ms: int, imp_id: str | None = None, offer_id: int = 7) -> Impression:
    # A generator of its own: one generator never issues an ID earlier than its last.
    aimp_id = IdGenerator(TEST_SEAL).new_id(at_ms)
    return Impression(aimp_id=aimp_id, offer_id=offer_id, pid=3, imp_id=imp_id)


async def test_a_batch_is_indexed_and_found_by_aimp_id_and_imp_id(client: aioredis.Redis) -> None:
    with_imp_id = [_impression(NOW_MS - n, imp_id=f"imp-{n}") for n in range(1500)]
    without = [_impression(NOW_MS, imp_id=None) for _ in range(10)]
    batch = [(i, 3600) for i in with_imp_id + without]

    assert await index_impressions(client, batch, NOW_MS) == 1510
    assert await client.dbsize() == 2 * 1500 + 10

    first = with_imp_id[0]
    assert await find_impression(client, 7, 3, first.aimp_id, None) == (
        await find_impression(client, 7, 3, first.aimp_id, "imp-other")
    )
    found = await find_impression(client, 7, 3, first.aimp_id, None)
    assert (found.how, found.aimp_id) == (BY_AIMP_ID, first.aimp_id)
    found = await find_impression(client, 7, 3, None, "imp-1499")
    assert (found.how, found.aimp_id) == (BY_IMP_ID, with_imp_id[1499].aimp_id)
    # Another offer's click names this aimp_id: not linked.
    assert (await find_impression(client, 8, 3, first.aimp_id, None)).how == NOT_FOUND


async def test_each_key_lives_for_what_is_left_of_its_window(client: aioredis.Redis) -> None:
    fresh = _impression(NOW_MS - 1_000, imp_id="a")
    older = _impression(NOW_MS - 3_000_000, imp_id="b")  # 50 minutes into a 1-hour window
    expired = _impression(NOW_MS - 3_600_001, imp_id="c")

    indexed = await index_impressions(
        client, [(fresh, 3600), (older, 3600), (expired, 3600)], NOW_MS
    )

    assert indexed == 2
    assert await client.exists(aimp_key(expired.aimp_id), imp_key(7, 3, "c")) == 0
    for impression, left_ms in ((fresh, 3_599_000), (older, 600_000)):
        for key in (aimp_key(impression.aimp_id), imp_key(7, 3, str(impression.imp_id))):
            ttl = await client.pttl(key)
            assert left_ms - 5_000 < ttl <= left_ms, key


async def test_a_reused_imp_id_points_at_its_latest_impression(client: aioredis.Redis) -> None:
    earlier, later = _impression(NOW_MS - 10, imp_id="same"), _impression(NOW_MS, imp_id="same")
    await index_impressions(client, [(earlier, 60), (later, 60)], NOW_MS)
    assert (await find_impression(client, 7, 3, None, "same")).aimp_id == later.aimp_id


async def test_indexing_goes_on_after_redis_forgets_its_scripts(client: aioredis.Redis) -> None:
    """A restarted Redis has no scripts loaded: the call loads it again."""
    await index_impressions(client, [(_impression(NOW_MS, "x"), 60)], NOW_MS)
    await client.script_flush()
    again = _impression(NOW_MS, "y")
    assert await index_impressions(client, [(again, 60)], NOW_MS) == 1
    assert (await find_impression(client, 7, 3, None, "y")).aimp_id == again.aimp_id


async def test_nothing_to_index_sends_nothing(client: aioredis.Redis) -> None:
    assert await index_impressions(client, [], NOW_MS) == 0
    expired = _impression(NOW_MS - 120_000)
    assert await index_impressions(client, [(expired, 60)], NOW_MS) == 0
    assert await client.dbsize() == 0


async def test_a_click_linked_by_aimp_id_gets_the_impressions_imp_id(
    client: aioredis.Redis,
) -> None:
    """The click names only the aimp_id: the link carries the imp_id the affiliate
    sent with that impression (colons and all), for the tracking URL's
    {impression_id}; none when the impression had none; an index key written before
    the imp_id was kept still links."""
    with_colons = _impression(NOW_MS, imp_id="camp:7:banner")
    bare = _impression(NOW_MS)
    await index_impressions(client, [(with_colons, 60), (bare, 60)], NOW_MS)
    found = await find_impression(client, 7, 3, with_colons.aimp_id, None)
    assert (found.how, found.aimp_id, found.imp_id) == (
        BY_AIMP_ID,
        with_colons.aimp_id,
        "camp:7:banner",
    )
    assert (await find_impression(client, 7, 3, bare.aimp_id, None)).imp_id is None
    older = _impression(NOW_MS)
    await client.set(aimp_key(older.aimp_id), "7:3", px=60_000)
    found = await find_impression(client, 7, 3, older.aimp_id, None)
    assert (found.how, found.imp_id) == (BY_AIMP_ID, None)
