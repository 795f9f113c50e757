"""``imptrack deliveries replay`` (issue 24): impressions dead-lettered while their
advertiser was down are counted by a dry run, sent again once it is up, logged once
each as delivered (at the attempt after their dead letter's), and a second run sends
nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from demo.advertiser import LocalAdvertiser
from tests.integration.admin import Admin
from tests.integration.conftest import RunningStack
from tests.integration.pixels import send_pixels

pytestmark = pytest.mark.integration

ADVERTISER, PID, OFFER = 99, 9902, 9910
PIXELS = 3
MAX_ATTEMPTS = 5  # FORWARD_MAX_ATTEMPTS's default, which the test stack keeps


@pytest.fixture(scope="module")
async def session(
    running_stack: RunningStack, advertiser: LocalAdvertiser
) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=running_stack.api_headers) as session:
        admin = Admin(running_stack, session)
        await admin.ok("POST", "/advertisers", {"id": ADVERTISER, "name": "Dead letters"})
        await admin.ok("POST", "/affiliates", {"id": PID, "name": "Dead letter affiliate"})
        await admin.ok(
            "POST",
            "/offers",
            {
                "id": OFFER,
                "title": "Down, then up",
                "advertiser_id": ADVERTISER,
                "allow_impressions": True,
                "impressions_url": advertiser.url("/down/replay?a={aimp_id}"),
            },
        )
        yield session


async def _rows(
    stack: RunningStack, sql: str, count: int, within: float = 60.0
) -> list[tuple[object, ...]]:
    deadline = time.monotonic() + within
    while len(rows := stack.query(sql)) < count:
        assert time.monotonic() < deadline, f"{sql}: {rows}"
        await asyncio.sleep(0.3)
    return rows


async def test_dead_letters_are_replayed_once_each_when_the_advertiser_is_up(
    running_stack: RunningStack, session: aiohttp.ClientSession, advertiser: LocalAdvertiser
) -> None:
    stack = running_stack
    advertiser.down.set()
    try:
        run = await send_pixels(stack, [{"offer_id": str(OFFER), "pid": str(PID)}] * PIXELS)
        assert run.refused == 0 and len(run.accepted) == PIXELS
        dead = await _rows(
            stack,
            "SELECT aimp_id, attempt FROM deliveries "
            f"WHERE offer_id = {OFFER} AND outcome = 'dead_letter'",
            PIXELS,
        )
    finally:
        advertiser.down.clear()
    assert {aimp_id for aimp_id, _ in dead} == set(run.accepted)
    assert {attempt for _, attempt in dead} == {MAX_ATTEMPTS}
    asked_before = len(advertiser.requests("/down/replay"))

    args = ("deliveries", "replay", "--offer", str(OFFER))
    counted = stack.imptrack(*args, "--dry-run")
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.startswith(
        f"{PIXELS} dead-lettered deliveries (impression {PIXELS}) of offer {OFFER} "
        "would be sent again"
    ), counted.stdout

    sent = stack.imptrack(*args)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith(f"scheduled {PIXELS} of {PIXELS} dead-lettered"), sent.stdout
    delivered = await _rows(
        stack,
        "SELECT aimp_id, attempt FROM deliveries "
        f"WHERE offer_id = {OFFER} AND outcome = 'delivered'",
        PIXELS,
    )
    assert sorted(delivered) == sorted((a, MAX_ATTEMPTS + 1) for a in run.accepted)
    assert len(advertiser.requests("/down/replay")) - asked_before == PIXELS

    # Nothing is left to replay, and a replay run again sends nothing.
    again = stack.imptrack(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("0 dead-lettered deliveries"), again.stdout
    await asyncio.sleep(1.0)
    assert (
        len(
            stack.query(
                f"SELECT 1 FROM deliveries WHERE offer_id = {OFFER} AND outcome = 'delivered'"
            )
        )
        == PIXELS
    )
    assert len(advertiser.requests("/down/replay")) - asked_before == PIXELS


async def test_a_destination_filter_that_matches_nothing_sends_nothing(
    running_stack: RunningStack,
) -> None:
    done = running_stack.imptrack(
        "deliveries", "replay", "--destination", "https://nowhere.example", "--dry-run"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("0 dead-lettered deliveries to https://nowhere.example")
