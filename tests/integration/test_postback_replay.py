"""``imptrack postbacks replay`` (issue 24): a postback refused while its offer was
paused is sent again once the offer is active, counted first by a dry run; the new
decision is one more row naming the original, the refusal stays, and a second run
sends nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from tests.integration.admin import Admin
from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration

ADVERTISER, PID, OFFER = 98, 9802, 9810


@pytest.fixture(scope="module")
async def session(running_stack: RunningStack) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(headers=running_stack.api_headers) as session:
        admin = Admin(running_stack, session)
        await admin.ok("POST", "/advertisers", {"id": ADVERTISER, "name": "Replays"})
        await admin.ok("POST", "/affiliates", {"id": PID, "name": "Replay affiliate"})
        await admin.ok(
            "POST",
            "/offers",
            {
                "id": OFFER,
                "title": "Replayed",
                "advertiser_id": ADVERTISER,
                "tracking_url": "https://adv.example/c?clickid={clickid}",
                "payments": [{"type": "CPA", "revenue": "8.00", "payout": "5.00"}],
            },
        )
        yield session


async def _rows(stack: RunningStack, sql: str, count: int) -> list[tuple[object, ...]]:
    """The snapshot's answer once it has ``count`` rows (the exporter publishes it
    every second here)."""
    deadline = time.monotonic() + 60
    while len(rows := stack.query(sql)) < count:
        assert time.monotonic() < deadline, f"{sql}: {rows}"
        await asyncio.sleep(0.3)
    return rows


async def test_a_postback_refused_while_its_offer_was_paused_is_replayed_once(
    running_stack: RunningStack, session: aiohttp.ClientSession
) -> None:
    stack = running_stack
    admin = Admin(stack, session)
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat(timespec="seconds")
    async with session.get(
        f"{stack.edge_url}/click?offer_id={OFFER}&pid={PID}", allow_redirects=False
    ) as response:
        assert response.status == 302, await response.text()
        clickid = response.headers["X-Clickid"]
    await admin.ok("PATCH", f"/offers/{OFFER}", {"status": "paused"})
    await asyncio.sleep(1.5)  # the edges' and the worker's catalogs follow
    params = {"clickid": clickid, "action_id": "replayed-1", "sum": "12.50"}
    async with session.get(f"{stack.edge_url}/postback", params=params) as response:
        refused = await response.json()
    assert (response.status, refused["status"]) == (400, 2), refused
    assert "is not active" in refused["error"]
    await admin.ok("PATCH", f"/offers/{OFFER}", {"status": "active"})
    original = refused["postback_id"]
    await _rows(stack, f"SELECT 1 FROM server_postbacks WHERE postback_id = '{original}'", 1)

    args = ("postbacks", "replay", "--from", since, "--offer", str(OFFER))
    counted = stack.imptrack(*args, "--dry-run")
    assert counted.returncode == 0, counted.stderr
    assert counted.stdout.startswith("1 refused postbacks from "), counted.stdout
    assert "(offer_not_active 1) would be sent again; nothing sent" in counted.stdout

    sent = stack.imptrack(*args)
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.startswith("sent 1 of 1 refused postbacks"), sent.stdout

    (decided,) = await _rows(
        stack,
        "SELECT outcome, status, error_kind, conversion_id, params->>'sum' "
        f"FROM server_postbacks WHERE replay_of = '{original}'",
        1,
    )
    assert decided[:3] == ("created", 1, None)
    conversion_id = decided[3]
    (conversion,) = await _rows(
        stack,
        "SELECT action_id, status, revenue, payout FROM conversions "
        f"WHERE conversion_id = '{conversion_id}'",
        1,
    )
    assert conversion[0] == "replayed-1" and str(conversion[2]) == "8.00000000"
    # The past stays as it was: the refusal is still there, as it was decided.
    (kept,) = stack.query(
        f"SELECT outcome, error_kind FROM server_postbacks WHERE postback_id = '{original}'"
    )
    assert kept == ("refused", "offer_not_active")

    again = stack.imptrack(*args)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("0 refused postbacks from "), again.stdout
    assert "nothing sent" in again.stdout
    assert len(stack.query(f"SELECT 1 FROM conversions WHERE offer_id = {OFFER}")) == 1


async def test_a_bad_time_range_is_refused_with_what_was_wrong(
    running_stack: RunningStack,
) -> None:
    done = running_stack.imptrack(
        "postbacks", "replay", "--from", "2026-12-04", "--to", "2026-12-01", "--dry-run"
    )
    assert done.returncode == 2
    assert "--to 2026-12-01T00:00:00+00:00 is not after --from 2026-12-04" in done.stderr
    done = running_stack.imptrack("postbacks", "replay", "--from", "last week")
    assert done.returncode == 2
    assert "'last week' is not a date (2026-12-04) or a date and time" in done.stderr
