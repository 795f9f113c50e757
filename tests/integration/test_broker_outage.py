"""The broker stops answering while pixels arrive (issue 9, "service faults").

The broker process is frozen with SIGSTOP, which is what a hung or unreachable
broker looks like to its clients: connections stay open and nothing is answered.
The edge must then answer 503 with ``Retry-After`` (never a GIF for an impression it
could not store), say why on ``/healthz``, and serve again by itself once the broker
is thawed; every impression it answered with a GIF is exported exactly once. One it
refused may be stored all the same (its request was in flight): at most those.

A stack of its own: freezing the broker of the shared one would stall every test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator

import aiohttp
import pytest

from tests.integration.conftest import RunningStack, get_json, started_stack
from tests.integration.pixels import send_pixels

OFFER = 1
PID = 1
PRODUCE_TIMEOUT = 2.0  # EDGE_PRODUCE_TIMEOUT: how long a pixel waits for the broker
CATALOG = """
advertisers: [{id: 1, name: Outage advertiser}]
affiliates: [{id: 1, name: Outage affiliate}]
offers: [{id: 1, title: Outage offer, advertiser_id: 1, allow_impressions: true}]
"""


@pytest.fixture(scope="module")
def outage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    home = tmp_path_factory.mktemp("outage")
    catalog = home / "catalog.yaml"
    catalog.write_text(CATALOG)
    env = {
        "EDGE_PRODUCE_TIMEOUT": str(PRODUCE_TIMEOUT),
        "EXPORT_BATCH_SECONDS": "0.2",
        "BROKER_SESSION_TIMEOUT": "6",
        "BROKER_REBALANCE_TIMEOUT": "6",
    }
    with started_stack(home, catalog, **env) as running:
        try:
            yield running
        finally:
            pid = running.stack.pid("broker")
            if pid is not None:
                os.kill(pid, signal.SIGCONT)  # a frozen broker would not stop


STABLE_SECONDS = 5.0
"""How long the edge must serve every probe after the thaw before the last batch."""


def _pixels(count: int, tag: str) -> list[dict[str, str]]:
    return [{"offer_id": str(OFFER), "pid": str(PID), "imp_id": f"{tag}-{n}"} for n in range(count)]


async def _refused_pixel(edge_url: str) -> tuple[int, dict[str, str], bytes, float]:
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{edge_url}/imp", params=_pixels(1, "frozen")[0]) as response:
            body = await response.read()
            return response.status, dict(response.headers), body, time.monotonic() - started


def _exported_ids(stack: RunningStack) -> list[str]:
    rows = stack.query("SELECT aimp_id FROM impressions WHERE offer_id = ?", [OFFER])
    return sorted(str(r[0]) for r in rows)


def test_a_frozen_broker_gets_503_with_retry_after_and_the_edge_recovers_by_itself(
    outage_stack: RunningStack,
) -> None:
    stack = outage_stack
    edge = stack.edge_url
    before = asyncio.run(send_pixels(stack, _pixels(20, "before"), concurrency=4))
    assert before.refused == 0 and len(before.accepted) == 20

    broker = stack.stack.pid("broker")
    assert broker is not None
    os.kill(broker, signal.SIGSTOP)
    try:
        refused = [asyncio.run(_refused_pixel(edge)) for _ in range(3)]
        health_status, health = get_json(f"{edge}/healthz")
    finally:
        os.kill(broker, signal.SIGCONT)

    for status, headers, body, seconds in refused:
        assert status == 503, (status, body)
        assert headers.get("Retry-After", "").isdigit(), headers
        assert not body.startswith(b"GIF"), "a GIF for an impression that was not stored"
        assert b"could not be stored" in body, body
        assert "X-Aimp-Id" not in headers
        # Answered once the produce's own limit passed, not left hanging.
        assert seconds < PRODUCE_TIMEOUT + 3, seconds
    assert health_status == 503
    assert health["status"] == "unhealthy", health
    assert health["broker"], "the health page says what the broker did"

    # Thawed: the edge serves again by itself, no restart. A lone Kafka node frozen
    # past its session timeout fences itself when it wakes, and its partitions get
    # their leader back one by one (the edge answers 503 for those meanwhile). The
    # fencing may come a few seconds after the first pixels are served again: seen in
    # CI, a probe of 8 all served, then one of the next 20 refused. So the edge must
    # serve every probe (8 at once, spread over the partitions by their aimp_ids) for
    # STABLE_SECONDS in a row within 60 s; a refused pixel meanwhile is a 503 with
    # Retry-After, as checked above, and stored or not as the broker says.
    deadline = time.monotonic() + 60
    refused_probes, served = 0, dict[str, dict[str, str]]()
    clean_since: float | None = None
    while time.monotonic() < deadline:
        again = asyncio.run(send_pixels(stack, _pixels(8, "probe"), concurrency=8))
        refused_probes += again.refused
        served |= again.accepted
        if again.refused:
            clean_since = None
        elif clean_since is None:
            clean_since = time.monotonic()
        elif time.monotonic() - clean_since >= STABLE_SECONDS:
            break
        time.sleep(0.5)
    assert clean_since is not None and time.monotonic() - clean_since >= STABLE_SECONDS, (
        f"the edge did not serve every pixel for {STABLE_SECONDS} s within 60 s of the "
        "broker's return"
    )
    after = asyncio.run(send_pixels(stack, _pixels(20, "after"), concurrency=4))
    assert after.refused == 0 and len(after.accepted) == 20
    assert get_json(f"{edge}/healthz")[0] == 200

    # Every GIF is one exported impression. A refused pixel may be stored all the
    # same: its produce request was on its way when the edge gave up, and the broker
    # took it once thawed (docs/ARCHITECTURE.md, "A 503 is not a no"). Only those.
    # Wait for the answered ones by id, not by count: the count also holds the refused
    # pixels stored all the same, and reached len(answered) in CI with one answered
    # impression still on its way to DuckDB.
    answered = {*before.accepted, *served, *after.accepted}
    deadline = time.monotonic() + 90
    while not answered <= set(_exported_ids(stack)) and time.monotonic() < deadline:
        time.sleep(1)
    stack.settle()
    exported = _exported_ids(stack)
    assert len(exported) == len(set(exported)), "an impression exported twice"
    assert answered <= set(exported), "a GIF answered for an impression that was not stored"
    assert len(set(exported) - answered) <= len(refused) + refused_probes
