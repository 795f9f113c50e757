"""Waiting for the catalog to be current as of an event's time (CatalogFollower)."""

from __future__ import annotations

import asyncio

from app.catalog.follower import CatalogFollower


async def _caught_up(follower: CatalogFollower, as_of_ms: int) -> None:
    async with follower._caught_up:
        follower.current_as_of_ms = as_of_ms
        follower._caught_up.notify_all()


async def test_an_event_waits_until_the_catalog_is_current_as_of_its_time() -> None:
    """An event newer than what the follower knows waits for a later empty fetch;
    an older one does not wait; past the bound the answer is False."""
    follower = CatalogFollower("127.0.0.1:9")
    await _caught_up(follower, 1_000)
    assert await follower.wait_current(999, within=0.01)
    assert not await follower.wait_current(1_500, within=0.05)
    waiting = asyncio.create_task(follower.wait_current(1_500, within=5))
    await asyncio.sleep(0.01)
    await _caught_up(follower, 1_200)
    await asyncio.sleep(0.01)
    assert not waiting.done(), "1200 is not yet 1500"
    await _caught_up(follower, 1_600)
    assert await waiting
