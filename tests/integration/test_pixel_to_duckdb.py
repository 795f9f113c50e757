"""Pixels through the real edge, broker, worker and exporter into DuckDB."""

from __future__ import annotations

import aiohttp
import pytest
from aiokafka import AIOKafkaProducer

from app.events import kinds
from app.ids import IdGenerator
from tests.ids import TEST_SEAL
from tests.integration.conftest import RunningStack
from tests.integration.pixels import pixel_params, send_pixels

pytestmark = pytest.mark.integration


async def test_pixels_arrive_in_duckdb_exactly_once_with_their_fields(
    stack: RunningStack,
) -> None:
    """Every GIF-answered pixel is one DuckDB row with its offer, affiliate, subs and imp_id."""
    before = stack.exported_impressions()
    run = await send_pixels(stack, pixel_params(800, offer_id=11, prefix="once"))
    assert len(run.accepted) == 800 and run.refused == 0

    assert stack.wait_exported(before + 800) == before + 800
    rows = stack.query(
        "SELECT aimp_id, offer_id, pid, imp_id, sub1, sub8 FROM impressions WHERE offer_id = 11"
    )
    assert len(rows) == 800
    by_id = {row[0]: row[1:] for row in rows}
    assert by_id.keys() == run.accepted.keys()
    for aimp_id, sent in run.accepted.items():
        assert by_id[aimp_id] == (
            11,
            int(sent["pid"]),
            sent["imp_id"],
            sent["sub1"],
            sent["sub8"],
        )
    hourly = stack.query("SELECT sum(impressions) FROM impressions_hourly WHERE offer_id = 11")
    assert hourly == [(800,)]
    # The exporter tells how long they took, edge to DuckDB (a minute's window).
    delays = stack.exported_status()["end_to_end"]
    assert delays["count"] >= 800
    assert 0 <= delays["p50_ms"] <= delays["p99_ms"] <= delays["max_ms"] < 120_000


async def test_edge_reports_client_ip_and_user_agent(stack: RunningStack) -> None:
    """The impression carries the caller's address and User-Agent; X-Forwarded-For is
    ignored unless trusted proxy hops are configured."""
    before = stack.exported_impressions()
    async with aiohttp.ClientSession() as session:
        async with session.get(
            f"{stack.edge_url}/imp",
            params={"offer_id": "12", "pid": "5"},
            headers={"User-Agent": "pytest-agent/1", "X-Forwarded-For": "203.0.113.9"},
        ) as response:
            assert response.status == 200
            assert response.headers["Cache-Control"].startswith("no-store")
            assert len(await response.read()) == 43
    stack.wait_exported(before + 1)
    rows = stack.query("SELECT ua, ip FROM impressions WHERE offer_id = 12")
    assert rows == [("pytest-agent/1", "127.0.0.1")]


async def test_recorded_envelopes_are_stored_once_per_impression(
    stack: RunningStack,
) -> None:
    """Envelopes on impressions-recorded become one row per impression with its
    fields, an impression repeated in a later envelope of the same fetch once, an
    empty envelope none. (Envelopes the exporter cannot read: test_unreadable_exports.)"""
    ids = IdGenerator(TEST_SEAL)
    good = [
        {"aimp_id": ids.new_id(), "offer_id": 9403, "pid": 7, "sub1": f"ok-{n}"} for n in range(3)
    ]
    recorded = kinds.RECORDED_ENVELOPE.current
    values = [
        recorded.encode_rows(good[:2]),
        recorded.empty(),
        recorded.encode_rows([good[2], good[0]]),  # a replay in the same batch
    ]
    stack.settle()
    before = stack.exported_status()
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.broker, acks="all")
    await producer.start()
    try:
        for value in values:  # one partition, so one fetch holds them all in order
            await producer.send_and_wait(kinds.RECORDED_IMPRESSIONS.topic, value, partition=0)
    finally:
        await producer.stop()

    expected = before["exported"]["impressions"] + 3
    assert stack.wait_exported(expected) == expected
    after = stack.exported_status()
    assert after["sent_to_unreadable"] == before["sent_to_unreadable"]
    rows = stack.query(
        "SELECT aimp_id, sub1, currency, revenue FROM impressions WHERE offer_id = 9403"
    )
    assert sorted(rows) == sorted((e["aimp_id"], e["sub1"], "USD", 0) for e in good)
