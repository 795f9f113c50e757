"""Redis restarted while the forwarder delivers (issue 9, "service faults").

The delivery schedule, its claims and the delivery log live in Redis. Redis is
stopped and started again (a clean restart: it writes its append-only file on the
way down) while thousands of impressions are being forwarded. Every impression the
edge answered with a GIF must reach the advertiser exactly once, and its delivery
must be logged (in DuckDB) exactly once.

A stack of its own: the shared one's other tests must not see Redis go away.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import pytest

from tests.integration.advertiser import AdvertiserSink
from tests.integration.conftest import (
    RunningStack,
    get_json,
    one_offer_catalog,
    started_stack,
)
from tests.integration.pixels import send_pixels

OFFER = 1
BEFORE, AFTER = 3000, 500


@pytest.fixture(scope="module")
def sink() -> Iterator[AdvertiserSink]:
    advertiser = AdvertiserSink().start()
    try:
        yield advertiser
    finally:
        advertiser.stop()


@pytest.fixture(scope="module")
def redis_stack(
    tmp_path_factory: pytest.TempPathFactory, sink: AdvertiserSink
) -> Iterator[RunningStack]:
    home = tmp_path_factory.mktemp("redis-restart")
    catalog = one_offer_catalog(home, "Restart", OFFER, sink.url("/ok?a={aimp_id}"))
    env = {
        "FORWARD_ALLOWED_NETWORKS": "127.0.0.1/32",
        "FORWARD_BACKOFF_SECONDS": "0.2",
        "FORWARD_BACKOFF_MAX_SECONDS": "1",
        "EXPORT_BATCH_SECONDS": "0.2",
    }
    with started_stack(home, catalog, **env) as running:
        yield running


def _pixels(count: int, tag: str) -> list[dict[str, str]]:
    return [{"offer_id": str(OFFER), "pid": "1", "imp_id": f"{tag}-{n}"} for n in range(count)]


def test_redis_restarted_while_forwarding_loses_and_doubles_nothing(
    redis_stack: RunningStack, sink: AdvertiserSink
) -> None:
    stack = redis_stack
    before = asyncio.run(send_pixels(stack, _pixels(BEFORE, "before")))
    assert before.refused == 0 and len(before.accepted) == BEFORE

    # Mid-flight: some delivered, most still scheduled or claimed.
    deadline = time.monotonic() + 60
    while len(sink.requests("/ok")) < 100 and time.monotonic() < deadline:
        time.sleep(0.05)
    delivered_before_restart = len(sink.requests("/ok"))
    assert 0 < delivered_before_restart < BEFORE, "the restart must fall mid-delivery"
    stack.stack.stop("redis")
    time.sleep(1.0)  # the forwarder and the worker meet a Redis that is gone
    # The operator's view meanwhile: the forwarder says it is unhealthy, and why.
    status, health = get_json(f"{stack.settings.forwarder_url}/healthz")
    stack.stack.start("redis")
    assert status == 503, health
    assert health["status"].startswith("unhealthy"), health
    assert health["forwarding"]["schedule"]["error"], health

    after = asyncio.run(send_pixels(stack, _pixels(AFTER, "after")))
    assert after.refused == 0 and len(after.accepted) == AFTER
    accepted = {*before.accepted, *after.accepted}

    deadline = time.monotonic() + 180
    while not accepted <= set(sink.delivered("/ok")) and time.monotonic() < deadline:
        time.sleep(0.5)
    time.sleep(3.0)  # a second delivery of anything would arrive now
    delivered = sink.delivered("/ok")
    missing = accepted - set(delivered)
    assert not missing, f"{len(missing)} impressions never delivered"
    doubled = {a: n for a, n in delivered.items() if n > 1}
    assert not doubled, f"{len(doubled)} impressions delivered more than once"
    assert set(delivered) == accepted

    # The delivery log: one "delivered" attempt per impression, none lost in Redis.
    deadline = time.monotonic() + 60
    query = "SELECT aimp_id FROM deliveries WHERE offer_id = ? AND outcome = 'delivered'"
    logged: Counter[str] = Counter()
    while time.monotonic() < deadline:
        logged = Counter(str(r[0]) for r in stack.query(query, [OFFER]))
        if len(logged) >= len(accepted):
            break
        time.sleep(2.0)
    assert set(logged) == accepted and max(logged.values()) == 1, (
        len(logged),
        max(logged.values(), default=0),
    )
