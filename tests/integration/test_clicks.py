"""The tracking link end to end: click → edge (judge, link, record, 302) → clicks
agent → DuckDB, with the impression index the impressions agent keeps in Redis."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from app.ids import id_ms
from tests.integration.admin import Admin, topic_keys
from tests.integration.conftest import RunningStack
from tests.integration.links import linked

pytestmark = pytest.mark.integration

ADVERTISER, INACTIVE_ADVERTISER = 51, 52
PID, PENDING_PID, DELETED_PID, DISABLED_PID, BLOCKING_PID = 5101, 5102, 5103, 5104, 5105
MACROS = {
    "c": "clickid",
    "imp": "impression_id",
    "a": "aimp_id",
    "o": "offer_id",
    "p": "pid",
    "adv": "advertiser_id",
    "ip": "ip",
    "ua": "ua",
    "t": "time",
    "r": "rand",
    **{f"s{n}": f"sub{n}" for n in range(1, 9)},
}
TRACKING = "https://adv.example/c/{sub3}?" + "&".join(f"{k}={{{m}}}" for k, m in MACROS.items())
TRAFFICBACK = "https://network.example/back?o={offer_id}&p={pid}&s={sub1}"


@pytest.fixture(scope="module")
async def admin(running_stack: RunningStack) -> AsyncIterator[Admin]:
    async with aiohttp.ClientSession() as session:
        admin = Admin(running_stack, session)
        await admin.ok("POST", "/advertisers", {"id": ADVERTISER, "name": "Clicks"})
        await admin.ok("POST", "/affiliates", {"id": PID, "name": "Clicker"})
        await admin.ok(
            "POST", "/affiliates", {"id": PENDING_PID, "name": "Pending", "status": "pending"}
        )
        for pid in (DELETED_PID, DISABLED_PID, BLOCKING_PID):
            await admin.ok("POST", "/affiliates", {"id": pid, "name": f"Affiliate {pid}"})
        await admin.ok("DELETE", f"/affiliates/{DELETED_PID}")
        await admin.ok("PUT", f"/affiliates/{BLOCKING_PID}/blocked-advertisers/{ADVERTISER}")
        await admin.ok(
            "POST",
            "/advertisers",
            {"id": INACTIVE_ADVERTISER, "name": "Inactive", "status": "inactive"},
        )

        async def offer(offer_id: int, **fields: Any) -> None:
            body = {
                "id": offer_id,
                "title": f"Clicks {offer_id}",
                "advertiser_id": ADVERTISER,
                "allow_impressions": True,
                "tracking_url": TRACKING,
                **fields,
            }
            await admin.ok("POST", "/offers", body)

        await offer(5110)
        await offer(5111, view_through_window="2s")
        await offer(5112, status="paused", trafficback_url=TRAFFICBACK)
        await offer(5113, status="paused")
        await offer(5114, tracking_url=None)
        await offer(5115)
        await offer(5116)
        await admin.ok("DELETE", "/offers/5116")
        await offer(5117, access="approval")
        await offer(5118, advertiser_id=INACTIVE_ADVERTISER)
        await offer(5119, allow_impressions=False)  # a rule for impressions, not clicks
        await admin.ok("PUT", f"/offers/5110/affiliates/{DISABLED_PID}", {"rule": "disabled"})
        yield admin


async def _click(
    session: aiohttp.ClientSession, stack: RunningStack, **params: str
) -> tuple[int, dict[str, str], Any]:
    async with session.get(
        f"{stack.edge_url}/click", params=params, allow_redirects=False
    ) as response:
        body = await response.json() if response.content_type == "application/json" else None
        return response.status, dict(response.headers), body


def _query(location: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(location).query, keep_blank_values=True)


async def _pixel(session: aiohttp.ClientSession, stack: RunningStack, **params: str) -> str:
    url = f"{stack.edge_url}/imp"
    async with session.get(url, params=params, headers=stack.api_headers) as response:
        assert response.status == 200
        return response.headers["X-Aimp-Id"]


async def _indexed(stack: RunningStack, offer_id: int, imp_id: str) -> None:
    """Wait until the worker links clicks to this impression."""
    await linked(stack, offer_id, PID, imp_id=imp_id)


async def test_the_redirect_carries_every_macro_encoded(stack: RunningStack, admin: Admin) -> None:
    sent = {
        "imp_id": "i&d=1",
        "sub1": "a&b=c",
        "sub2": "x=1#frag",
        "sub3": "../../admin?q=1",
        "sub4": "%41",
        "sub5": "é 🚀",
        "sub6": "+ +",
        "sub7": "Set-Cookie: x=1",
        "sub8": "y" * 255,
    }
    async with aiohttp.ClientSession(headers={"User-Agent": "UA a=b&c"}) as session:
        status, headers, _ = await _click(session, stack, offer_id="5110", pid=str(PID), **sent)
    assert status == 302
    location = headers["Location"]
    assert urlsplit(location).path == "/c/..%2F..%2Fadmin%3Fq%3D1"
    clickid = headers["X-Clickid"]
    query = _query(location)
    assert len(query.pop("r")[0]) > 0
    assert query == {
        "c": [clickid],
        "imp": [sent["imp_id"]],
        "a": [""],  # no impression to link to
        "o": ["5110"],
        "p": [str(PID)],
        "adv": [str(ADVERTISER)],
        "ip": ["127.0.0.1"],
        "ua": ["UA a=b&c"],
        "t": [str(id_ms(clickid) // 1000)],
        **{f"s{n}": [sent[f"sub{n}"]] for n in range(1, 9)},
    }
    assert "Set-Cookie" not in headers


@pytest.mark.parametrize("value", ["a\r\nSet-Cookie: x=1", "a\nLocation: http://evil", "a\rb"])
async def test_cr_and_lf_never_reach_a_header(
    stack: RunningStack, admin: Admin, value: str
) -> None:
    async with aiohttp.ClientSession() as session:
        status, headers, body = await _click(
            session, stack, offer_id="5110", pid=str(PID), sub1=value
        )
    assert status == 400 and "Location" not in headers and "Set-Cookie" not in headers
    assert body == {"error": "sub1 must not contain control characters", "parameter": "sub1"}


async def test_a_click_is_linked_by_aimp_id_or_imp_id_within_the_window(
    stack: RunningStack, admin: Admin
) -> None:
    links: dict[str, tuple[str, str | None]] = {}  # clickid -> (link, aimp_id) expected

    async def click(
        session: aiohttp.ClientSession, expect: tuple[str, str | None], **p: str
    ) -> None:
        status, headers, _ = await _click(session, stack, pid=str(PID), **p)
        assert status == 302
        assert _query(headers["Location"])["a"] == [expect[1] or ""], (p, expect)
        links[headers["X-Clickid"]] = expect

    async with aiohttp.ClientSession() as session:
        seen = await _pixel(session, stack, offer_id="5110", pid=str(PID), imp_id="lnk-1")
        other = await _pixel(session, stack, offer_id="5115", pid=str(PID), imp_id="lnk-1")
        short = await _pixel(session, stack, offer_id="5111", pid=str(PID), imp_id="win-1")
        await _indexed(stack, 5110, "lnk-1")
        await _indexed(stack, 5115, "lnk-1")
        await _indexed(stack, 5111, "win-1")
        await click(session, ("imp_id", seen), offer_id="5110", imp_id="lnk-1")
        await click(session, ("aimp_id", seen), offer_id="5110", aimp_id=seen)
        # Linked by aimp_id alone, the click carries that impression's imp_id: in the
        # tracking URL's {impression_id} and in its row; an imp_id it sent wins.
        _, headers, _ = await _click(session, stack, pid=str(PID), offer_id="5110", aimp_id=seen)
        assert _query(headers["Location"])["imp"] == ["lnk-1"]
        filled = headers["X-Clickid"]
        links[filled] = ("aimp_id", seen)
        _, headers, _ = await _click(
            session, stack, pid=str(PID), offer_id="5110", aimp_id=seen, imp_id="mine"
        )
        assert _query(headers["Location"])["imp"] == ["mine"]
        # aimp_id wins over imp_id when both are given and it is this offer's.
        await click(session, ("aimp_id", seen), offer_id="5110", aimp_id=seen, imp_id="x")
        # Another offer's impression is not this click's, whatever its ID.
        await click(session, ("none", None), offer_id="5110", aimp_id=other)
        await click(session, ("imp_id", other), offer_id="5115", aimp_id=seen, imp_id="lnk-1")
        await click(session, ("none", None), offer_id="5110", imp_id="never-seen")
        await click(session, ("imp_id", short), offer_id="5111", imp_id="win-1")
        # After the offer's 2 s view-through window: no longer linked.
        await asyncio.sleep(max(0.0, id_ms(short) / 1000 + 2.3 - time.time()))
        await click(session, ("none", None), offer_id="5111", imp_id="win-1")
        await click(session, ("none", None), offer_id="5111", aimp_id=short)

    rows = await _stored_clicks(stack, set(links))
    assert rows == links
    stored_imp_id = await asyncio.to_thread(
        stack.query, "SELECT imp_id FROM clicks WHERE clickid = ?", [filled]
    )
    assert stored_imp_id == [("lnk-1",)]


async def _stored_clicks(
    stack: RunningStack, clickids: set[str]
) -> dict[str, tuple[str, str | None]]:
    deadline = time.monotonic() + 60
    while True:
        rows = await asyncio.to_thread(
            stack.query,
            "SELECT clickid, link, aimp_id FROM clicks WHERE clickid IN (SELECT unnest(?))",
            [sorted(clickids)],
        )
        if len(rows) >= len(clickids) or time.monotonic() > deadline:
            return {c: (link, a) for c, link, a in rows}  # type: ignore[misc]
        await asyncio.sleep(1.0)


async def test_ineligible_clicks_go_to_trafficback_or_get_their_reason(
    stack: RunningStack, admin: Admin
) -> None:
    cases = [
        # (offer, pid, reason, status)
        (5112, PID, "offer_not_active", 302),
        (5113, PID, "offer_not_active", 403),
        (5114, PID, "no_tracking_url", 403),
        (5199, PID, "offer_unknown", 404),
        (5110, PENDING_PID, "affiliate_not_active", 403),
        (5110, 5199, "affiliate_unknown", 404),
        (5116, PID, "offer_deleted", 403),
        (5117, PID, "affiliate_not_approved", 403),
        (5118, PID, "advertiser_not_active", 403),
        (5110, DELETED_PID, "affiliate_deleted", 403),
        (5110, DISABLED_PID, "affiliate_disabled_for_offer", 403),
        (5110, BLOCKING_PID, "advertiser_disabled_for_affiliate", 403),
    ]
    async with aiohttp.ClientSession() as session:
        for offer_id, pid, reason, expected in cases:
            for _ in range(3):
                status, headers, body = await _click(
                    session, stack, offer_id=str(offer_id), pid=str(pid), sub1="s&1"
                )
                assert status == expected, (offer_id, pid, body)
                assert headers["X-Imptrack-Rejected"] == reason
                if status == 302:
                    assert headers["Location"] == (
                        f"https://network.example/back?o={offer_id}&p={pid}&s=s%261"
                    )
                else:
                    assert body["reason"] == reason and body["error"].startswith(
                        "click not tracked: "
                    )
    expected_rows = Counter()
    for offer_id, pid, reason, _ in cases:
        expected_rows[(offer_id, pid, reason)] += 3
    deadline = time.monotonic() + 60
    while True:
        stored = await asyncio.to_thread(
            stack.query,
            "SELECT offer_id, pid, reason, count(*) FROM click_rejections"
            " WHERE offer_id BETWEEN 5110 AND 5199 OR pid BETWEEN 5101 AND 5199 GROUP BY ALL",
        )
        found = Counter({(o, p, r): n for o, p, r, n in stored})  # type: ignore[misc]
        if found == expected_rows or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    assert found == expected_rows
    clicks = await asyncio.to_thread(
        stack.query,
        "SELECT count(*) FROM clicks WHERE offer_id IN (5112, 5113, 5114, 5116, 5117, 5118, 5199)"
        f" OR pid IN ({PENDING_PID}, {DELETED_PID}, {DISABLED_PID}, {BLOCKING_PID}, 5199)",
    )
    assert clicks == [(0,)]
    # An offer closed to impressions still takes clicks.
    async with aiohttp.ClientSession() as session:
        status, headers, _ = await _click(session, stack, offer_id="5119", pid=str(PID))
    assert status == 302 and "X-Imptrack-Rejected" not in headers
    report = await asyncio.to_thread(stack.imptrack, "report", "rejections", "--format", "json")
    by_reason = {row["reason"]: row for row in json.loads(report.stdout)}
    assert by_reason["no_tracking_url"]["clicks"] >= 3
    assert by_reason["affiliate_unknown"]["clicks"] >= 3
    # Narrowed to this test's advertiser: its offers' rejections (an unknown offer's
    # have no advertiser and are left out).
    report = await asyncio.to_thread(
        stack.imptrack, "report", "rejections", "--advertiser", str(ADVERTISER), "--format", "json"
    )
    assert report.returncode == 0, report.stderr
    mine = {row["reason"]: row for row in json.loads(report.stdout)}
    assert mine["no_tracking_url"]["clicks"] >= 3 and "offer_unknown" not in mine


async def test_clicks_reach_duckdb_exactly_once_across_a_worker_kill(
    stack: RunningStack, admin: Admin
) -> None:
    accepted: list[str] = []
    refused = 0
    total = 3000

    async def clicker(session: aiohttp.ClientSession, share: int) -> None:
        nonlocal refused
        for n in range(share):
            status, headers, _ = await _click(
                session, stack, offer_id="5115", pid=str(PID), sub1=f"k{n}"
            )
            if status == 302:
                accepted.append(headers["X-Clickid"])
            else:
                refused += 1

    async with aiohttp.ClientSession() as session:
        sending = asyncio.gather(*(clicker(session, total // 8) for _ in range(8)))
        while len(accepted) < 800:  # noqa: ASYNC110 - polling a counter the senders own
            await asyncio.sleep(0.05)
        await asyncio.to_thread(stack.stack.kill, "worker")
        await asyncio.sleep(0.5)
        await asyncio.to_thread(stack.stack.start, "worker")
        await sending
    assert refused == 0 and len(accepted) == total
    deadline = time.monotonic() + 90
    while True:
        rows = await asyncio.to_thread(
            stack.query,
            "SELECT count(*), count(DISTINCT clickid) FROM clicks WHERE offer_id = 5115"
            " AND sub1 LIKE 'k%'",
        )
        if rows[0][0] >= total or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    await asyncio.sleep(1.5)
    rows = await asyncio.to_thread(
        stack.query,
        "SELECT count(*), count(DISTINCT clickid) FROM clicks WHERE offer_id = 5115"
        " AND sub1 LIKE 'k%'",
    )
    if rows != [(total, total)]:
        stored = await asyncio.to_thread(
            stack.query, "SELECT clickid FROM clicks WHERE offer_id = 5115 AND sub1 LIKE 'k%'"
        )
        missing = set(accepted) - {c for (c,) in stored}
        produced = set(await topic_keys(stack.settings.broker, "clicks"))
        raise AssertionError(
            f"stored {rows}, expected {total}; of {len(missing)} missing, "
            f"{len(missing & produced)} are on 'clicks'; e.g. {sorted(missing)[:3]}"
        )
    hourly = await asyncio.to_thread(
        stack.query, "SELECT sum(clicks) FROM clicks_hourly WHERE offer_id = 5115"
    )
    assert hourly[0][0] >= total
