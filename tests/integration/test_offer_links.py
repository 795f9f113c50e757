"""Generated links through the admin API and `imptrack links` (issue 21 point 1): the
pixel, the click link and the postback URLs work as given, once the affiliate fills
in its placeholders."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.integration.admin import Admin
from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration

ADVERTISER, PID, OFFER, CLICKS_ONLY = 7101, 7111, 7121, 7122


@pytest.fixture(scope="module")
async def admin(running_stack: RunningStack) -> AsyncIterator[Admin]:
    async with aiohttp.ClientSession() as session:
        admin = Admin(running_stack, session)
        await admin.ok("POST", "/advertisers", {"id": ADVERTISER, "name": "Links"})
        await admin.ok("POST", "/affiliates", {"id": PID, "name": "Linker"})
        landing = "https://adv.example/land?c={clickid}&i={impression_id}"
        for offer, impressions in ((OFFER, True), (CLICKS_ONLY, False)):
            await admin.ok(
                "POST",
                "/offers",
                {
                    "id": offer,
                    "title": f"Links {offer}",
                    "advertiser_id": ADVERTISER,
                    "allow_impressions": impressions,
                    "tracking_url": landing,
                },
            )
        yield admin


def _filled(template: str, **values: str) -> str:
    """The affiliate's placeholders replaced: the given ones, the others left empty."""
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), ""), template)


async def test_the_generated_links_work_as_given(stack: RunningStack, admin: Admin) -> None:
    status, links = await admin.call("GET", f"/offers/{OFFER}/links?pid={PID}")
    assert status == 200, links
    assert links["warnings"] == []
    async with aiohttp.ClientSession() as session:
        pixel = _filled(links["impressions"]["pixel_url"], imp_id="gen-1", sub1="banner")
        async with session.get(pixel) as response:
            assert response.status == 200 and (await response.read()).startswith(b"GIF89a")
            assert "X-Imptrack-Rejected" not in response.headers
        click = _filled(links["click"]["link"], imp_id="gen-1")
        async with session.get(click, allow_redirects=False) as response:
            assert response.status == 302, await response.text()
    cli = await asyncio.to_thread(
        stack.imptrack, "links", str(OFFER), "--affiliate", str(PID), "--format", "json"
    )
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout) == links
    text = await asyncio.to_thread(stack.imptrack, "links", str(OFFER), "--affiliate", str(PID))
    assert f"Impression pixel (URL):  {links['impressions']['pixel_url']}" in text.stdout


async def test_an_offer_without_impressions_and_bad_requests_say_why(admin: Admin) -> None:
    status, links = await admin.call("GET", f"/offers/{CLICKS_ONLY}/links?pid={PID}")
    assert status == 200
    assert "does not take impressions" in links["impressions"]["unavailable"]
    for path, expected, says in (
        (f"/offers/{OFFER}/links", 400, "pid: is required"),
        (f"/offers/{OFFER}/links?pid=abc", 400, "pid: must be a whole number"),
        (f"/offers/{OFFER}/links?pid=999999", 404, "there is no affiliate 999999"),
        (f"/offers/999999/links?pid={PID}", 404, "there is no offer 999999"),
        (f"/offers/{OFFER}/links?pid={PID}&x=1", 400, "x: is not a parameter"),
    ):
        status, body = await admin.call("GET", path)
        assert (status, says in body["error"]) == (expected, True), (path, body)
