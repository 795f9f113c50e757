"""Forwarding recorded impressions to the advertiser, end to end: pixel → edge →
impressions agent → forward task → forwarder → a real local HTTP server, with every
attempt exported to DuckDB and shown in the Deliveries slice."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import duckdb
import pytest
from aiokafka import AIOKafkaConsumer

from app.catalog.model import Destination, Offer
from app.events import kinds
from app.forwarding.split import choose, destinations
from app.ids import id_ms
from tests.integration.admin import Admin, where_lost
from tests.integration.advertiser import AdvertiserSink
from tests.integration.conftest import RunningStack
from tests.integration.pixels import PixelRun, send_pixels

pytestmark = pytest.mark.integration

ADVERTISER = 41
PID = 4101


@pytest.fixture(scope="module")
async def admin(running_stack: RunningStack) -> AsyncIterator[Admin]:
    async with aiohttp.ClientSession() as session:
        admin = Admin(running_stack, session)
        await admin.ok("POST", "/advertisers", {"id": ADVERTISER, "name": "Forwarding"})
        await admin.ok("POST", "/affiliates", {"id": PID, "name": "Forwarding affiliate"})
        yield admin


async def _offer(admin: Admin, offer_id: int, url: str, **fields: Any) -> None:
    await admin.ok(
        "POST",
        "/offers",
        {
            "id": offer_id,
            "title": f"Forwarding {offer_id}",
            "advertiser_id": ADVERTISER,
            "allow_impressions": True,
            "impressions_url": url,
            **fields,
        },
    )


async def _pixels(stack: RunningStack, offer_id: int, count: int, **extra: str) -> PixelRun:
    params = [{"offer_id": str(offer_id), "pid": str(PID), **extra} for _ in range(count)]
    run = await send_pixels(stack, params, concurrency=8)
    assert run.refused == 0 and len(run.accepted) == count
    return run


async def _until(what: str, check: Callable[[], bool], within: float = 60.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


def _dead_letters_here(stack: RunningStack) -> int:
    """Dead letters the running forwarder process has written since it started."""
    return int(stack.forwarder_status()["forwarding"]["outcomes_here"].get("dead_letter", 0))


def _dead_letters_of(stack: RunningStack, offer_id: int) -> int:
    """Dead letters of the offer in the exporter's snapshot (published every second)."""
    con = duckdb.connect(str(stack.settings.duckdb_path), read_only=True)
    try:
        row = con.execute(
            "SELECT count(DISTINCT aimp_id) FROM deliveries"
            " WHERE offer_id = ? AND outcome = 'dead_letter'",
            [offer_id],
        ).fetchone()
    finally:
        con.close()
    return int(row[0]) if row else 0


async def _attempts(stack: RunningStack, offer_id: int, expected: int) -> list[tuple[Any, ...]]:
    """(aimp_id, attempt, outcome, status, error) of the offer's delivery attempts,
    once ``expected`` of them are in DuckDB (and a moment more, to catch extras)."""
    query = (
        "SELECT aimp_id, attempt, outcome, status, error FROM deliveries"
        " WHERE offer_id = ? ORDER BY aimp_id, attempt"
    )
    deadline = time.monotonic() + 60
    while True:
        rows = await asyncio.to_thread(stack.query, query, [offer_id])
        if len(rows) >= expected or time.monotonic() > deadline:
            break
        await asyncio.sleep(1.0)
    await asyncio.sleep(1.0)
    return await asyncio.to_thread(stack.query, query, [offer_id])


async def _dead_letters(stack: RunningStack, aimp_ids: set[str]) -> Counter[str]:
    """Records per aimp_id on the dead-letter topic, for these impressions."""
    consumer = AIOKafkaConsumer(
        kinds.DEAD_LETTERS.topic,
        bootstrap_servers=stack.settings.broker,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: Counter[str] = Counter()
    try:
        while batch := await consumer.getmany(timeout_ms=1000):
            for messages in batch.values():
                for message in messages:
                    record = json.loads(message.value)
                    if record["aimp_id"] in aimp_ids:
                        found[record["aimp_id"]] += 1
    finally:
        await consumer.stop()
    return found


async def test_every_macro_arrives_exactly_as_sent(
    stack: RunningStack, admin: Admin, advertiser: AdvertiserSink
) -> None:
    """Values that try to add parameters, climb paths, smuggle fragments or
    percent-escapes arrive as the one value the affiliate sent."""
    names = {
        "o": "offer_id",
        "p": "pid",
        "adv": "advertiser_id",
        "imp": "impression_id",
        "a": "aimp_id",
        "ua": "ua",
        "ip": "ip",
        "t": "time",
        "r": "rand",
        **{f"s{n}": f"sub{n}" for n in range(1, 9)},
    }
    query = "&".join(f"{short}={{{macro}}}" for short, macro in names.items())
    await _offer(admin, 4110, advertiser.url("/ok/macros/{sub3}") + "?" + query)
    sent = {
        "imp_id": "imp&id=1",
        "sub1": "a&b=c",
        "sub2": "x=1#fragment",
        "sub3": "../../admin?q=1",
        "sub4": "%41%2F",
        "sub5": "é 🚀 ü",
        "sub6": "+ +",
        "sub7": "a;b,c/d:e@f",
        "sub8": "x" * 255,
    }
    params = [{"offer_id": "4110", "pid": str(PID), **sent} for _ in range(5)]
    ua = "Mozilla/5.0 (X11) a=b&c=d"
    async with aiohttp.ClientSession(headers={"User-Agent": ua, **stack.api_headers}) as session:
        aimp_ids = []
        for p in params:
            async with session.get(f"{stack.edge_url}/imp", params=p) as response:
                assert response.status == 200
                aimp_ids.append(response.headers["X-Aimp-Id"])
    path = "/ok/macros/..%2F..%2Fadmin%3Fq%3D1"
    await _until("5 deliveries arrive", lambda: len(advertiser.requests(path)) >= 5, within=30)
    received = {r.aimp_id: r for r in advertiser.requests(path)}
    assert sorted(received) == sorted(aimp_ids)
    for aimp_id, request in received.items():
        expected = {
            "o": "4110",
            "p": str(PID),
            "adv": str(ADVERTISER),
            "imp": sent["imp_id"],
            "a": aimp_id,
            "ua": ua,
            "ip": "127.0.0.1",
            "t": str(id_ms(aimp_id) // 1000),
            **{f"s{n}": sent[f"sub{n}"] for n in range(1, 9)},
        }
        rand = request.params.pop("r")
        assert len(rand) == 1 and rand[0].isdigit()
        assert request.params == {k: [v] for k, v in expected.items()}


async def test_split_follows_the_weights_and_the_aimp_id(
    stack: RunningStack, admin: Admin, advertiser: AdvertiserSink
) -> None:
    """Each impression goes to exactly one URL, the one its aimp_id chooses; shares
    follow the weights (the 100,000-impression check of the same function is in
    tests/unit/forwarding)."""
    main = advertiser.url("/ok/split-main?a={aimp_id}")
    extra = [
        (advertiser.url("/ok/split-b?a={aimp_id}"), 30),
        (advertiser.url("/ok/split-c?a={aimp_id}"), 20),
    ]
    await _offer(
        admin, 4111, main, additional_impressions_urls=[{"url": u, "weight": w} for u, w in extra]
    )
    count = 2000
    run = await _pixels(stack, 4111, count)
    paths = {"/ok/split-main": main, "/ok/split-b": extra[0][0], "/ok/split-c": extra[1][0]}
    await _until(
        f"{count} split deliveries arrive",
        lambda: sum(len(advertiser.requests(p)) for p in paths) >= count,
    )
    await asyncio.sleep(1.0)
    weighted = destinations(
        Offer(
            4111,
            "",
            ADVERTISER,
            impressions_url=main,
            additional_impressions_urls=tuple(Destination(u, w) for u, w in extra),
        )
    )
    got: dict[str, str] = {}
    for path, url in paths.items():
        for request in advertiser.requests(path):
            assert request.aimp_id not in got, "an impression reached two URLs"
            got[request.aimp_id] = url
    assert set(got) == set(run.accepted)
    assert all(got[a] == choose(weighted, a) for a in got)
    shares = Counter(got.values())
    for url, weight in weighted:
        # Four standard deviations of a binomial share at this count.
        tolerance = 4 * 100 * (weight / 100 * (1 - weight / 100) / count) ** 0.5
        assert abs(100 * shares[url] / count - weight) <= tolerance, (url, shares[url])


async def test_503_then_200_is_delivered_once_with_two_attempts_logged(
    stack: RunningStack, admin: Admin, advertiser: AdvertiserSink
) -> None:
    await _offer(admin, 4112, advertiser.url("/flaky?a={aimp_id}"))
    run = await _pixels(stack, 4112, 20)
    rows = await _attempts(stack, 4112, 40)
    assert advertiser.delivered("/flaky") == Counter({a: 1 for a in run.accepted})
    assert rows == sorted(
        [(a, 1, "retrying", 503, "HTTP 503") for a in run.accepted]
        + [(a, 2, "delivered", 200, None) for a in run.accepted]
    )
    report = await asyncio.to_thread(stack.imptrack, "report", "deliveries", "--format", "json")
    assert report.returncode == 0, report.stderr
    (line,) = [r for r in json.loads(report.stdout) if r["offer_id"] == 4112]
    assert line["destination"] == advertiser.url("/flaky?a={aimp_id}")
    assert (line["impressions"], line["delivered"], line["attempts"]) == (20, 20, 40)
    assert (line["retrying"], line["failed"], line["dead_letter"], line["blocked"]) == (0, 0, 0, 0)


async def test_404_is_not_retried_and_is_dead_lettered(
    stack: RunningStack, admin: Admin, advertiser: AdvertiserSink
) -> None:
    await _offer(admin, 4113, advertiser.url("/gone?a={aimp_id}"))
    run = await _pixels(stack, 4113, 10)
    rows = await _attempts(stack, 4113, 10)
    assert rows == sorted((a, 1, "failed", 404, "HTTP 404") for a in run.accepted)
    assert Counter(r.aimp_id for r in advertiser.requests("/gone")) == Counter(
        {a: 1 for a in run.accepted}
    )
    assert await _dead_letters(stack, set(run.accepted)) == Counter({a: 1 for a in run.accepted})


async def test_always_500_is_dead_lettered_after_the_last_attempt_and_trips_the_breaker(
    stack: RunningStack, admin: Admin
) -> None:
    """Five attempts each (the default), then a dead-letter record. The host's breaker
    opens on the way and holds deliveries back without using up their attempts."""
    broken = AdvertiserSink().start()  # a host of its own: its breaker is its own
    try:
        opened_before = stack.forwarder_status()["forwarding"]["schedule"].get("breaker_opened", 0)
        await _offer(admin, 4114, broken.url("/broken?a={aimp_id}"))
        # Few impressions: once the breaker is open, it lets one attempt through a
        # second, so each impression costs about its five attempts in seconds.
        run = await _pixels(stack, 4114, 4)
        rows = await _attempts(stack, 4114, 20)
        expected = []
        for a in run.accepted:
            expected += [(a, n, "retrying", 500, "HTTP 500") for n in range(1, 5)]
            expected.append((a, 5, "dead_letter", 500, "HTTP 500"))
        assert rows == sorted(expected)
        assert Counter(r.aimp_id for r in broken.requests("/broken")) == Counter(
            {a: 5 for a in run.accepted}
        )
        dead = await _dead_letters(stack, set(run.accepted))
        assert dead == Counter({a: 1 for a in run.accepted})
        schedule = stack.forwarder_status()["forwarding"]["schedule"]
        assert schedule["breaker_opened"] > opened_before
        # While open, nothing reached the host for the breaker's whole second.
        times = sorted(r.at for r in broken.requests("/broken"))
        assert max(b - a for a, b in itertools.pairwise(times)) >= 0.9
    finally:
        broken.stop()


async def test_destinations_on_refused_addresses_are_never_called(
    stack: RunningStack, admin: Admin, advertiser: AdvertiserSink
) -> None:
    """127.0.0.1 is allowed in this stack; 127.0.0.2 (loopback too), a private and a
    link-local address are not, and neither is a redirect to one of them."""
    inside = AdvertiserSink(host="127.0.0.2").start()
    try:
        cases = {
            4115: inside.url("/ok/inside?a={aimp_id}"),
            4116: "http://10.1.2.3:8080/imp?a={aimp_id}",
            4117: "http://169.254.169.254/latest/meta-data?a={aimp_id}",
            4118: advertiser.url("/moved?a={aimp_id}&to=") + inside.url("/ok/inside-redirected"),
        }
        for offer_id, url in cases.items():
            await _offer(admin, offer_id, url)
        runs = {offer_id: await _pixels(stack, offer_id, 3) for offer_id in cases}
        for offer_id, run in runs.items():
            rows = await _attempts(stack, offer_id, 3)
            assert [(a, n, outcome) for a, n, outcome, _, _ in rows] == sorted(
                (a, 1, "blocked") for a in run.accepted
            )
            for *_, status, error in rows:
                assert status is None and "unless FORWARD_ALLOWED_NETWORKS lists it" in error
        assert inside.received == []
        assert len(advertiser.requests("/moved")) == 3  # the allowed first hop
    finally:
        inside.stop()


async def test_forwarder_killed_with_retries_pending_delivers_each_impression_once(
    stack: RunningStack, admin: Admin, advertiser: AdvertiserSink
) -> None:
    """The advertiser is down: every first attempt fails and its retry waits in Redis.
    Once every impression is scheduled the forwarder process is killed (its forward
    tasks since the last commit are read again after the restart, so replays are
    recognised), the advertiser comes back, the forwarder restarts: each impression
    arrives exactly once. (Losing impressions upstream across a kill is test_crash_recovery's
    subject; here every impression is recorded before the kill.)"""
    await _offer(admin, 4119, advertiser.url("/down?a={aimp_id}"))
    advertiser.down.set()
    params = [{"offer_id": "4119", "pid": str(PID)} for _ in range(1000)]
    dead_before = _dead_letters_here(stack)
    run = await send_pixels(stack, params, concurrency=16)
    assert run.refused == 0

    # The first impressions may use up their five attempts (about 2.4 s here, the
    # host's breaker letting a round through each second) before the last ones are
    # scheduled: those are dead-lettered, as the retry policy says, and must then
    # never be delivered. Every other one is scheduled with its retry pending.
    def pending() -> bool:
        scheduled = stack.forwarder_status()["forwarding"]["schedule"]["scheduled"]
        dead = _dead_letters_here(stack) - dead_before
        return (
            scheduled + dead >= len(run.accepted)
            and scheduled >= len(run.accepted) // 2
            and len(advertiser.requests("/down")) >= 5
        )

    # The host's breaker opens after a few failures, so most of the pending work is
    # held back by it rather than waiting out a backoff: both are in Redis. The kill
    # comes at once: waited long enough, the first impressions would use up their
    # five attempts and be dead-lettered, as they should.
    await _until("every impression is scheduled and retries are pending", pending)
    await asyncio.to_thread(stack.stack.kill, "forwarder")
    advertiser.down.clear()
    await asyncio.sleep(0.5)
    await asyncio.to_thread(stack.stack.start, "forwarder")
    try:
        await _until(
            "every impression not dead-lettered is delivered",
            lambda: (
                len(advertiser.delivered("/down")) + _dead_letters_of(stack, 4119)
                >= len(run.accepted)
            ),
            within=120,
        )
    except AssertionError:
        missing = sorted(set(run.accepted) - set(advertiser.delivered("/down")))
        outcomes = await asyncio.to_thread(
            stack.query,
            "SELECT aimp_id, list(outcome ORDER BY attempt) FROM deliveries"
            " WHERE aimp_id IN (SELECT unnest(?)) GROUP BY ALL",
            [missing],
        )
        recorded = await asyncio.to_thread(
            stack.query,
            "SELECT count(*) FROM impressions WHERE aimp_id IN (SELECT unnest(?))",
            [missing],
        )
        rejected = await asyncio.to_thread(
            stack.query,
            "SELECT reason, count(*) FROM rejections WHERE aimp_id IN (SELECT unnest(?))"
            " GROUP BY ALL",
            [missing],
        )
        on_topic = await where_lost(stack.settings.broker, "impressions", set(missing))
        raise AssertionError(
            f"{len(missing)} of {len(run.accepted)} never delivered; recorded: {recorded}; "
            f"rejected: {rejected}; on the impressions topic: {on_topic}; "
            f"stale acks refused: {stack.worker_status().get('stale_acks_refused')}; "
            f"their attempts: {outcomes[:10]}"
        ) from None
    await asyncio.sleep(2.0)
    rows = await _attempts(stack, 4119, len(run.accepted))
    dead = {a for a, _, outcome, _, _ in rows if outcome == "dead_letter"}
    assert len(dead) < len(run.accepted) // 2, f"{len(dead)} dead-lettered"
    expected = Counter({a: 1 for a in run.accepted if a not in dead})
    assert advertiser.delivered("/down") == expected, "delivered twice, or a dead letter sent"
    delivered = Counter(a for a, _, outcome, _, _ in rows if outcome == "delivered")
    assert delivered == expected
