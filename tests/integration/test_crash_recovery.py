"""SIGKILL mid-stream: nothing accepted is lost, nothing is counted twice."""

from __future__ import annotations

import asyncio

import pytest

from tests.integration.admin import where_lost
from tests.integration.conftest import RunningStack
from tests.integration.pixels import PixelRun, pixel_params, send_pixels

pytestmark = pytest.mark.integration


async def _kill_during_traffic(stack: RunningStack, component: str, offer_id: int) -> None:
    components = stack.stack
    run = PixelRun()
    before = stack.exported_impressions()
    params = pixel_params(6000, offer_id=offer_id, prefix=f"kill-{component}")
    sending = asyncio.create_task(send_pixels(stack, params, concurrency=8, run=run))
    while len(run.accepted) < 1500:  # noqa: ASYNC110 - polling a counter the sender owns
        await asyncio.sleep(0.05)
    await asyncio.to_thread(components.kill, component)
    killed_at = len(run.accepted)
    await asyncio.sleep(0.5)
    await asyncio.to_thread(components.start, component)
    await sending
    assert killed_at < len(run.accepted), "traffic should go on while the component is down"
    assert run.refused == 0

    expected = before + len(run.accepted)
    exported = await asyncio.to_thread(stack.wait_exported, expected, 90)
    if exported != expected:
        rejected = await asyncio.to_thread(
            stack.query,
            "SELECT reason, count(*) FROM rejections WHERE offer_id = ? GROUP BY ALL",
            [offer_id],
        )
        stored = await asyncio.to_thread(
            stack.query, "SELECT aimp_id FROM impressions WHERE offer_id = ?", [offer_id]
        )
        missing = set(run.accepted) - {a for (a,) in stored}
        on_topic = await where_lost(stack.settings.broker, "impressions", missing)
        raise AssertionError(
            f"exported {exported}, expected {expected}; rejected: {rejected}; "
            f"{len(missing)} missing, on the impressions topic: {on_topic}; "
            f"stale acks refused: {stack.worker_status().get('stale_acks_refused')}; "
            f"offset gaps seen since the restart: {stack.worker_status().get('offset_gaps_seen')}; "
            f"refetched: {stack.worker_status().get('offset_gaps_refetched')}"
        )
    rows = await asyncio.to_thread(
        stack.query,
        "SELECT count(*), count(DISTINCT aimp_id) FROM impressions WHERE offer_id = ?",
        [offer_id],
    )
    assert rows == [(len(run.accepted), len(run.accepted))]
    hourly = await asyncio.to_thread(
        stack.query,
        "SELECT sum(impressions) FROM impressions_hourly WHERE offer_id = ?",
        [offer_id],
    )
    assert hourly == [(len(run.accepted),)]


async def test_worker_killed_mid_stream(stack: RunningStack) -> None:
    """Worker SIGKILLed and restarted: DuckDB holds each accepted impression once."""
    await _kill_during_traffic(stack, "worker", offer_id=31)


async def test_exporter_killed_mid_stream(stack: RunningStack) -> None:
    """Exporter SIGKILLed and restarted: it resumes from the offsets stored in DuckDB."""
    await _kill_during_traffic(stack, "exporter", offer_id=32)
