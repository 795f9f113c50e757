"""A catalog change made mid-stream is in effect on every edge process and on the
worker within one second."""

from __future__ import annotations

import asyncio
import time

import aiohttp
import pytest

from app.ids import id_time
from tests.integration.admin import Admin
from tests.integration.conftest import RunningStack
from tests.integration.pixels import PixelRun, send_pixels

pytestmark = pytest.mark.integration

OFFER, PID = 400, 401
EFFECT_MS = 1000


def _ms(aimp_id: str) -> int:
    return int(id_time(aimp_id).timestamp() * 1000)


def _process(stack: RunningStack, aimp_id: str) -> int:
    """Which edge process answered: the random bits the ID key unseals."""
    return stack.id_seal.origin(aimp_id)


async def _known_to_both_edge_processes(stack: RunningStack) -> None:
    """The admin API answers once its own edge process applied the change; the other
    one follows within a fetch. Probe with an unknown affiliate: the edge says
    ``affiliate_unknown`` (not ``offer_unknown``) once it knows the offer, and these
    probes are no part of the run."""
    ready: set[str] = set()
    deadline = time.monotonic() + 10
    while len(ready) < 2:
        assert time.monotonic() < deadline, "an edge process never learned of the offer"
        probe = await send_pixels(
            stack,
            [{"offer_id": str(OFFER), "pid": "999999"}] * 8,
            concurrency=4,
            fresh_connections=True,
        )
        ready |= {
            _process(stack, a) for a, v in probe.edge_verdicts.items() if v == "affiliate_unknown"
        }


async def test_pausing_and_resuming_an_offer_mid_stream(running_stack: RunningStack) -> None:
    """Pixels flow while the offer is paused, then resumed. Every pixel accepted more
    than 1 s after the pause (on either edge process) is rejected by the edge and
    the worker; every pixel accepted more than 1 s after the resume is tracked."""
    running_stack.settle()
    run = PixelRun()
    stop = asyncio.Event()

    async def traffic() -> None:
        n = 0
        while not stop.is_set():
            params = [
                {"offer_id": str(OFFER), "pid": str(PID), "imp_id": f"mid-{n + i}"}
                for i in range(20)
            ]
            n += 20
            await send_pixels(running_stack, params, concurrency=4, run=run, fresh_connections=True)
            await asyncio.sleep(0.02)

    async with aiohttp.ClientSession() as session:
        admin = Admin(running_stack, session)
        await admin.ok("POST", "/advertisers", {"id": 400, "name": "Mid-stream"})
        await admin.ok("POST", "/affiliates", {"id": PID, "name": "Mid-stream"})
        await admin.ok(
            "POST",
            "/offers",
            {"id": OFFER, "title": "Mid-stream", "advertiser_id": 400, "allow_impressions": True},
        )
        await _known_to_both_edge_processes(running_stack)
        sender = asyncio.create_task(traffic())
        await asyncio.sleep(1.5)
        paused_at = int(time.time() * 1000)
        await admin.ok("PATCH", f"/offers/{OFFER}", {"status": "paused"})
        await asyncio.sleep(2.5)
        resumed_at = int(time.time() * 1000)
        await admin.ok("PATCH", f"/offers/{OFFER}", {"status": "active"})
        await asyncio.sleep(2.5)
        stop.set()
        await sender

    assert run.refused == 0
    before_pause = {a for a in run.accepted if _ms(a) < paused_at}
    paused = {a for a in run.accepted if paused_at + EFFECT_MS <= _ms(a) < resumed_at}
    resumed = {a for a in run.accepted if _ms(a) >= resumed_at + EFFECT_MS}
    for window in (before_pause, paused, resumed):
        assert len({_process(running_stack, a) for a in window}) == 2, (
            "both edge processes answered"
        )

    assert {run.edge_verdicts[a] for a in before_pause} == {""}
    assert {run.edge_verdicts[a] for a in paused} == {"offer_not_active"}
    assert {run.edge_verdicts[a] for a in resumed} == {""}

    running_stack.settle()
    tracked = {
        row[0]
        for row in running_stack.query(
            "SELECT aimp_id FROM impressions WHERE offer_id = ?", [OFFER]
        )
    }
    rejected = dict(
        running_stack.query(
            "SELECT aimp_id, reason FROM rejections WHERE offer_id = ? AND pid = ?", [OFFER, PID]
        )
    )
    assert before_pause <= tracked
    assert all(rejected.get(a) == "offer_not_active" for a in paused)
    assert not paused & tracked
    assert resumed <= tracked
    assert tracked.isdisjoint(rejected), "no impression is both tracked and rejected"
    assert tracked | set(rejected) == set(run.accepted), "every accepted pixel has one verdict"
