"""Security promises that only a running stack can show (issue 9, "security"):

- a macro value filled into an advertiser's URL is one parameter value, whatever it
  holds: it can add no parameter, path or fragment;
- neither the API key nor an offer's postback token is ever written to a log, after
  admin calls with the key, with a near-miss key, and an offer created with a token;
  a refused key is logged by where it came from, for the operator.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.integration.admin import Admin
from tests.integration.advertiser import AdvertiserSink
from tests.integration.conftest import RunningStack
from tests.integration.pixels import send_pixels

ADVERTISER = 9701
OFFER = 9701
PID = 1  # in the seed catalog
TOKEN = "pb-token-9701-do-not-log-3f9c1e"
NEAR_MISS_FROM = "127.0.0.97"
# Each would change the URL's structure if it were pasted in unencoded.
HOSTILE_SUBS = {
    "sub1": "x&evil=1#fragment",
    "sub2": "../../admin?steal=1",
    "sub3": "a b/c?d=e&f=g%26h",
    "sub4": "@attacker.example:80/",
}


@pytest.fixture
async def admin(stack: RunningStack) -> AsyncIterator[Admin]:
    async with aiohttp.ClientSession() as session:
        yield Admin(stack, session)


async def test_macro_values_cannot_change_the_destination_urls_structure(
    stack: RunningStack, admin: Admin, advertiser: AdvertiserSink
) -> None:
    await admin.call("POST", "/advertisers", {"id": ADVERTISER, "name": "Macro advertiser"})
    url = advertiser.url("/macros?a={aimp_id}&s1={sub1}&s2={sub2}&s3={sub3}&s4={sub4}")
    await admin.ok(
        "POST",
        "/offers",
        {
            "id": OFFER,
            "title": "Macro offer",
            "advertiser_id": ADVERTISER,
            "allow_impressions": True,
            "impressions_url": url,
            "postback_token": TOKEN,
        },
    )
    params = {"offer_id": str(OFFER), "pid": str(PID), **HOSTILE_SUBS}
    run = await send_pixels(stack, [params], concurrency=1)
    assert run.refused == 0 and len(run.accepted) == 1
    (aimp_id,) = run.accepted

    for _ in range(300):  # up to a minute for the delivery
        if advertiser.requests("/macros"):
            break
        await asyncio.sleep(0.2)
    (received,) = advertiser.requests("/macros")
    assert received.path == "/macros"
    assert received.params == {
        "a": [aimp_id],
        "s1": [HOSTILE_SUBS["sub1"]],
        "s2": [HOSTILE_SUBS["sub2"]],
        "s3": [HOSTILE_SUBS["sub3"]],
        "s4": [HOSTILE_SUBS["sub4"]],
    }


async def test_no_api_key_or_postback_token_is_ever_logged(
    stack: RunningStack, admin: Admin
) -> None:
    key = stack.api_headers["API-Key"]
    # A near miss, and the token read back through the API.
    # From a loopback address of its own: the stack logs one refusal per address a
    # minute, and other tests (the hostile-input corpus) are refused from 127.0.0.1.
    connector = aiohttp.TCPConnector(local_addr=(NEAR_MISS_FROM, 0))
    async with aiohttp.ClientSession(connector=connector) as session:
        near_miss = {"API-Key": key[:-1] + ("x" if key[-1] != "x" else "y")}
        async with session.get(f"{stack.edge_url}/api/v1/offers", headers=near_miss) as r:
            assert r.status == 401
        stats = f"{stack.settings.exporter_url}/api/v1/stats/offers"
        async with session.get(stats, headers=near_miss) as r:
            assert r.status == 401
    await admin.call("GET", f"/offers/{OFFER}")
    await admin.call("PATCH", f"/offers/{OFFER}", {"postback_token": TOKEN + "-2"})
    await asyncio.sleep(1.0)  # the processes' log lines of the above are written

    logs = sorted(stack.settings.log_dir.glob("*.log"))
    assert logs, "the stack writes logs"
    texts = {path.name: path.read_text(errors="replace") for path in logs}
    for refusal in (
        f"refused GET /api/v1/offers from {NEAR_MISS_FROM}: a wrong key",
        f"refused GET /api/v1/stats/offers from {NEAR_MISS_FROM}: a wrong key",
    ):
        assert any(refusal in text for text in texts.values()), f"no log line: {refusal}"
    for path in logs:
        text = texts[path.name]
        assert key not in text, f"the API key is in {path.name}"
        assert key[:-1] not in text, f"most of the API key is in {path.name}"
        assert TOKEN not in text, f"an offer's postback token is in {path.name}"
