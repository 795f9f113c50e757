"""Affiliate postbacks end to end: pixel and click with the affiliate's imp_id and
subs → the advertiser's postbacks → conversions agent → forwarder → the affiliate's
postback URL (a real local HTTP server), each status told once with Affise's macros,
and every attempt in the Affiliate postbacks slice (CLI and stats API)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from app.events import kinds
from tests.integration.admin import Admin, topic_keys
from tests.integration.advertiser import AdvertiserSink
from tests.integration.conftest import RunningStack

pytestmark = pytest.mark.integration

ADVERTISER = 71
PID, SECOND_PID, FAILING_PID, REPLAY_PID = 7101, 7102, 7103, 7104
MAIN, OVERRIDDEN, FAILING, REPLAY = 7110, 7111, 7112, 7113
EVERY_MACRO = (
    "?click={clickid}&aimp={aimp_id}&imp={impression_id}&s1={sub1}&s2={sub2}&s3={sub3}"
    "&status={status}&payout={payout}&cur={currency}&goal={goal}&action={action_id}"
    "&offer={offer_id}&pid={pid}"
)


@pytest.fixture(scope="module")
def affiliate_sink() -> Iterator[AdvertiserSink]:
    """The affiliates' postback endpoint (AdvertiserSink answers by path)."""
    sink = AdvertiserSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="module")
def failing_sink() -> Iterator[AdvertiserSink]:
    """An endpoint of its own host, so its circuit breaker holds back nothing else."""
    sink = AdvertiserSink().start()
    try:
        yield sink
    finally:
        sink.stop()


def _offer(offer_id: int, **fields: Any) -> dict[str, Any]:
    return {
        "id": offer_id,
        "title": f"Affiliate postbacks {offer_id}",
        "advertiser_id": ADVERTISER,
        "allow_impressions": True,
        "tracking_url": "https://adv.example/c?clickid={clickid}",
        "payments": [
            {"type": "CPA", "revenue": "10.00", "payout": "7.00"},
            {"type": "CPA", "revenue": "4.00", "payout": "3.00", "goal": "2"},
        ],
        **fields,
    }


@pytest.fixture(scope="module")
async def session(
    running_stack: RunningStack, affiliate_sink: AdvertiserSink, failing_sink: AdvertiserSink
) -> AsyncIterator[aiohttp.ClientSession]:
    # With the API key: the pixel then shows its aimp_id.
    async with aiohttp.ClientSession(headers=running_stack.api_headers) as session:
        admin = Admin(running_stack, session)
        await admin.ok(
            "POST", "/advertisers", {"id": ADVERTISER, "name": "Postbacks to affiliates"}
        )
        affiliates = {
            PID: [affiliate_sink.url("/ok/global" + EVERY_MACRO)],
            SECOND_PID: [{"url": affiliate_sink.url("/ok/second?a={clickid}&st={status}")}],
            FAILING_PID: [failing_sink.url("/broken?a={clickid}")],
            REPLAY_PID: [affiliate_sink.url("/down/replay?a={clickid}&st={status}")],
        }
        for pid, urls in affiliates.items():
            await admin.ok(
                "POST",
                "/affiliates",
                {"id": pid, "name": f"Affiliate {pid}", "postback_urls": urls},
            )
        override = {
            "url": affiliate_sink.url("/ok/override?a={clickid}&st={status}&p={payout}"),
            "affiliates": [PID],
            "statuses": ["approved"],
        }
        for offer in (
            _offer(MAIN),
            _offer(OVERRIDDEN, affiliate_postbacks=[override]),
            _offer(FAILING),
            _offer(REPLAY),
        ):
            await admin.ok("POST", "/offers", offer)
        yield session


async def _get(session: aiohttp.ClientSession, url: str, **params: str) -> aiohttp.ClientResponse:
    async with session.get(url, params=params, allow_redirects=False) as response:
        await response.read()
        return response


async def _impression(
    session: aiohttp.ClientSession, stack: RunningStack, offer: int, pid: int, **params: str
) -> str:
    response = await _get(
        session, f"{stack.edge_url}/imp", offer_id=str(offer), pid=str(pid), **params
    )
    assert response.status == 200 and "X-Imptrack-Rejected" not in response.headers
    return response.headers["X-Aimp-Id"]


async def _click(
    session: aiohttp.ClientSession, stack: RunningStack, offer: int, pid: int, **params: str
) -> str:
    response = await _get(
        session, f"{stack.edge_url}/click", offer_id=str(offer), pid=str(pid), **params
    )
    assert response.status == 302, response.status
    return response.headers["X-Clickid"]


async def _postback(session: aiohttp.ClientSession, stack: RunningStack, **params: str) -> None:
    async with session.get(f"{stack.edge_url}/postback", params=params) as response:
        answer = await response.json()
        assert response.status == 200 and answer["status"] == 1, answer


async def _until(what: str, check: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


def _told(sink: AdvertiserSink, path: str) -> list[dict[str, str]]:
    """Each request the sink got on ``path``, its parameters one value each."""
    return [{k: v[0] for k, v in r.params.items()} for r in sink.requests(path)]


async def _received(sink: AdvertiserSink, path: str, count: int) -> list[dict[str, str]]:
    """The requests on ``path`` once there are ``count``, and a little longer to see
    any that would come twice."""
    await _until(f"{count} requests on {path}", lambda: len(sink.requests(path)) >= count)
    await asyncio.sleep(1.5)
    return _told(sink, path)


def _slice(stack: RunningStack, *args: str) -> list[dict[str, Any]]:
    done = stack.imptrack("report", "affiliate-postbacks", "--format", "json", *args)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


async def _slice_when(
    stack: RunningStack, ready: Callable[[list[dict[str, Any]]], bool], *args: str
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while True:
        rows = await asyncio.to_thread(_slice, stack, *args)
        if ready(rows):
            return rows
        assert time.monotonic() < deadline, f"the slice never got there: {rows}"
        await asyncio.sleep(0.5)


def _stats_api(stack: RunningStack, query: str) -> dict[str, Any]:
    request = urllib.request.Request(
        f"{stack.settings.exporter_url}/api/v1/stats/affiliate-postbacks?{query}",
        headers=stack.api_headers,
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        body: dict[str, Any] = json.loads(response.read())
        return body


async def test_each_status_is_told_once_with_every_macro(
    running_stack: RunningStack, session: aiohttp.ClientSession, affiliate_sink: AdvertiserSink
) -> None:
    """A view-through and a click conversion tell the affiliate's URL once each, every
    macro filled (its imp_id in {impression_id}); pending → approved → declined tell
    it twice more (payout 0 when declined); a duplicate tells nothing; the slice
    shows the four, by the CLI and the stats API."""
    stack = running_stack
    aimp_id = await _impression(
        session, stack, MAIN, PID, imp_id="aff-imp-1", sub1="banner", sub2="a&b=c"
    )
    clickid = await _click(session, stack, MAIN, PID, imp_id="aff-imp-2", sub3="s 3")
    await _postback(session, stack, aimp_id=aimp_id, action_id="vt-1", status="2")
    await _postback(session, stack, clickid=clickid, action_id="ck-1", goal="2")
    first = await _received(affiliate_sink, "/ok/global", 2)
    common = {"cur": "USD", "offer": str(MAIN), "pid": str(PID)}
    view_through = {
        "click": "",
        "aimp": aimp_id,
        "imp": "aff-imp-1",
        "s1": "banner",
        "s2": "a&b=c",
        "s3": "",
        "status": "2",
        "payout": "7.00",
        "goal": "1",
        "action": "vt-1",
        **common,
    }
    by_click = {
        "click": clickid,
        "aimp": "",
        "imp": "aff-imp-2",
        "s1": "",
        "s2": "",
        "s3": "s 3",
        "status": "1",
        "payout": "3.00",
        "goal": "2",
        "action": "ck-1",
        **common,
    }
    assert sorted(first, key=lambda p: p["action"]) == [by_click, view_through]

    await _postback(session, stack, aimp_id=aimp_id, action_id="vt-1", status="1")
    await _received(affiliate_sink, "/ok/global", 3)
    await _postback(session, stack, aimp_id=aimp_id, action_id="vt-1", status="3")
    async with session.get(
        f"{stack.edge_url}/postback", params={"clickid": clickid, "action_id": "ck-1", "goal": "2"}
    ) as response:
        assert (await response.json())["error"].startswith("duplicate action_id 'ck-1'")
    told = await _received(affiliate_sink, "/ok/global", 4)
    assert [(p["action"], p["status"], p["payout"]) for p in told] == [
        *[(p["action"], p["status"], p["payout"]) for p in first],
        ("vt-1", "1", "7.00"),
        ("vt-1", "3", "0"),
    ]

    rows = await _slice_when(
        stack, lambda rows: len(rows) == 4, "--offer", str(MAIN), "--sort", "status_at"
    )
    assert sorted((r["action_id"], r["conversion_status"], r["payout"]) for r in rows) == [
        ("ck-1", "approved", "3.0000"),
        ("vt-1", "approved", "7.0000"),
        ("vt-1", "declined", "0.0000"),
        ("vt-1", "pending", "7.0000"),
    ]
    assert {(r["pid"], r["http_status"], r["outcome"], r["attempts"]) for r in rows} == {
        (PID, 200, "delivered", 1)
    }
    # The URL requested, as the slice shows it, is what the endpoint received.
    as_requested = [
        {k: v[0] for k, v in parse_qs(urlsplit(r["url"]).query, keep_blank_values=True).items()}
        for r in rows
    ]
    assert sorted(as_requested, key=str) == sorted(told, key=str)
    assert {r["url"].split("?")[0] for r in rows} == {affiliate_sink.url("/ok/global")}
    declined = _slice(stack, "--offer", str(MAIN), "--status", "declined")
    assert [r["revision"] for r in declined] == [3]
    api = await asyncio.to_thread(_stats_api, stack, f"offer={MAIN}&affiliate={PID}")
    assert sorted((r["action_id"], r["conversion_status"]) for r in api["rows"]) == [
        ("ck-1", "approved"),
        ("vt-1", "approved"),
        ("vt-1", "declined"),
        ("vt-1", "pending"),
    ]
    assert {(r["outcome"], r["payout"]) for r in api["rows"] if r["action_id"] == "ck-1"} == {
        ("delivered", 3.0)
    }


async def test_an_offer_override_replaces_the_affiliates_own_url(
    running_stack: RunningStack, session: aiohttp.ClientSession, affiliate_sink: AdvertiserSink
) -> None:
    """The offer's override for PID (approved only) is told instead of PID's own URL,
    and only of approvals; another affiliate of the offer keeps its own URL."""
    stack = running_stack
    global_before = len(affiliate_sink.requests("/ok/global"))
    overridden = await _click(session, stack, OVERRIDDEN, PID)
    other = await _click(session, stack, OVERRIDDEN, SECOND_PID)
    await _postback(session, stack, clickid=overridden, action_id="ov-1", status="2")
    await _postback(session, stack, clickid=overridden, action_id="ov-1", status="1")
    await _postback(session, stack, clickid=other, action_id="ov-2", status="2")
    assert await _received(affiliate_sink, "/ok/override", 1) == [
        {"a": overridden, "st": "1", "p": "7.00"}
    ]
    assert await _received(affiliate_sink, "/ok/second", 1) == [{"a": other, "st": "2"}]
    assert len(affiliate_sink.requests("/ok/global")) == global_before


async def test_a_failing_url_is_retried_and_ends_dead_lettered(
    running_stack: RunningStack, session: aiohttp.ClientSession, failing_sink: AdvertiserSink
) -> None:
    """A URL answering 500 gets FORWARD_MAX_ATTEMPTS (5) attempts with backoff, then a
    dead letter; the slice says so with the last answer."""
    stack = running_stack
    clickid = await _click(session, stack, FAILING, FAILING_PID)
    await _postback(session, stack, clickid=clickid, action_id="fail-1")
    attempts = await _received(failing_sink, "/broken", 5)
    assert attempts == [{"a": clickid}] * 5
    times = [r.at for r in failing_sink.requests("/broken")]
    assert all(later > earlier + 0.05 for earlier, later in itertools.pairwise(times))
    (row,) = await _slice_when(
        stack, lambda rows: rows and rows[0]["outcome"] == "dead_letter", "--offer", str(FAILING)
    )
    assert (row["http_status"], row["attempts"], row["error"]) == (500, 5, "HTTP 500")
    dead = await topic_keys(stack.settings.broker, kinds.AFFILIATE_POSTBACK_DEAD_LETTERS.topic)
    assert dead.count(row["conversion_id"]) == 1


async def test_worker_and_forwarder_killed_tell_each_status_once(
    stack: RunningStack, session: aiohttp.ClientSession, affiliate_sink: AdvertiserSink
) -> None:
    """The affiliate's endpoint is down, so every postback waits in the schedule;
    the worker and the forwarder are SIGKILLed at once and restarted: what they read
    again (postbacks decided, tasks scheduled, since their last commit) is
    recognised, and each conversion's status reaches the affiliate once."""
    clickids = [await _click(session, stack, REPLAY, REPLAY_PID) for _ in range(20)]
    affiliate_sink.down.set()
    # The forwarder waits while the postbacks go in: otherwise the first conversions
    # spend their five attempts (0.2 s backoff here) before the last postback is sent
    # on a slow machine, and are dead-lettered, as the test does not intend.
    await asyncio.to_thread(stack.stack.stop, "forwarder")
    for n, clickid in enumerate(clickids):
        await _postback(session, stack, clickid=clickid, action_id=f"rp-{n}", status="2")
    await asyncio.to_thread(stack.stack.start_together, ["forwarder"])
    await _until(
        "the first attempts fail", lambda: len(affiliate_sink.requests("/down/replay")) > 0
    )
    await asyncio.to_thread(stack.stack.kill, "forwarder")
    await asyncio.to_thread(stack.stack.kill, "worker")
    affiliate_sink.down.clear()
    await asyncio.to_thread(stack.stack.start_together, ["worker", "forwarder"])
    try:
        await _until(
            "every conversion is told",
            lambda: len(affiliate_sink.delivered("/down/replay")) == len(clickids),
            within=120,
        )
    except AssertionError:
        missing = sorted(set(clickids) - set(affiliate_sink.delivered("/down/replay")))
        attempts = await asyncio.to_thread(
            stack.query,
            "SELECT conversion_id, list(outcome ORDER BY attempt) FROM affiliate_postbacks"
            " WHERE offer_id = ? GROUP BY ALL",
            [REPLAY],
        )
        raise AssertionError(
            f"{len(missing)} of {len(clickids)} never told: {missing[:5]}; attempts "
            f"exported: {attempts}; the schedule: {stack.forwarder_status()['forwarding']}"
        ) from None
    await asyncio.sleep(3.0)
    assert affiliate_sink.delivered("/down/replay") == {c: 1 for c in clickids}
    assert {p["st"] for p in _told(affiliate_sink, "/down/replay")} == {"2"}


async def test_bad_postback_urls_are_refused_by_the_admin_api_and_catalog_apply(
    running_stack: RunningStack, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A bad URL, an unknown macro, an address the forwarder refuses and an unknown
    affiliate each get their field and what was wrong, from both ways in; nothing is
    written. An exported catalog applied again changes nothing."""
    stack = running_stack
    admin = Admin(stack, session)
    cases = [
        ("/affiliates", {"id": 7190, "name": "Bad", "postback_urls": ["ftp://aff.example/pb"]}),
        (
            "/affiliates",
            {"id": 7190, "name": "Bad", "postback_urls": ["https://a.example/?x={sum}"]},
        ),
        ("/affiliates", {"id": 7190, "name": "Bad", "postback_urls": ["http://10.0.0.1/pb"]}),
        (
            "/offers",
            {
                **_offer(7191),
                "affiliate_postbacks": [{"url": "https://a.example/pb", "affiliates": [7199]}],
            },
        ),
    ]
    expected = [
        ("postback_urls[0].url", "must be an http or https URL, not a ftp: one"),
        ("postback_urls[0].url", "unknown macro {sum}; known: action_id, aimp_id, clickid,"),
        ("postback_urls[0].url", "10.0.0.1 is a private address; destinations there are refused"),
        ("affiliate_postbacks[0].affiliates", "there is no affiliate 7199; create it first"),
    ]
    for (path, body), (field, problem) in zip(cases, expected, strict=True):
        status, answer = await admin.call("POST", path, body)
        assert (status, answer["field"]) == (400, field), answer
        assert answer["error"].startswith(f"{field}: {problem}"), answer
    status, answer = await admin.call("PATCH", f"/affiliates/{PID}", {"postback_urls": ["x"]})
    assert (status, answer["field"]) == (400, "postback_urls[0].url"), answer

    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(
        "affiliates:\n"
        "  - {id: 7190, name: Bad, postback_urls: ['https://a.example/?s={nope}']}\n"
        "  - {id: 7192, name: Inside, postback_urls: ['http://169.254.169.254/latest']}\n"
    )
    applied = stack.imptrack("catalog", "apply", str(bad_file))
    assert applied.returncode == 2
    assert "affiliates[0].postback_urls[0].url: unknown macro {nope}" in applied.stderr
    assert "nothing was applied" in applied.stderr
    only_inside = tmp_path / "inside.yaml"
    only_inside.write_text(
        "affiliates:\n  - {id: 7192, name: Inside, postback_urls: ['http://169.254.169.254/x']}\n"
    )
    applied = stack.imptrack("catalog", "apply", str(only_inside))
    assert applied.returncode == 2
    assert (
        "affiliate 7192 postback_urls[0].url: 169.254.169.254 is a link-local address"
        in applied.stderr
    )
    for entity in ("affiliates/7190", "affiliates/7192", "offers/7191"):
        assert (await admin.call("GET", f"/{entity}"))[0] == 404

    exported = tmp_path / "exported.yaml"
    assert stack.imptrack("catalog", "export", "-o", str(exported)).returncode == 0
    assert "affiliate_postbacks:" in exported.read_text()
    again = stack.imptrack("catalog", "apply", str(exported))
    assert again.returncode == 0 and "0 catalog changes" in again.stdout, again
