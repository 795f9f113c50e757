"""Records on an exported topic that the exporter cannot read (an envelope, or a JSON
object a record) go to unreadable-records, as they were, and the export goes on past
them."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from app.events import dead_letters, kinds
from app.ids import IdGenerator
from tests.ids import TEST_SEAL
from tests.integration.conftest import RunningStack
from tests.integration.unreadable import unreadable_records

pytestmark = pytest.mark.integration

TOPIC = kinds.RECORDED_IMPRESSIONS.topic


def recorded_factory(offer_id: int | None, count: int, **fields: Any) -> list[dict[str, Any]]:
    ids = IdGenerator(TEST_SEAL)
    return [
        {
            "aimp_id": ids.new_id(),
            "offer_id": offer_id,
            "pid": 7,
            "sub1": f"after-{n}",
            "revenue": "0.0025",
            "payout": "0.0015",
            "currency": "USD",
            **fields,
        }
        for n in range(count)
    ]


def envelope(rows: list[dict[str, Any]]) -> bytes:
    return kinds.RECORDED_ENVELOPE.current.encode_rows(rows)


UNREADABLE: list[tuple[int, Callable[[str], bytes], str]] = [
    (
        9400,
        lambda token: b"\x7f" + orjson.dumps([[token]]),
        "recorded impressions envelope of format 127, which this imptrack does not know",
    ),
    (
        9401,
        lambda token: b"\x01" + orjson.dumps([[token]])[:-1] + b", broken",
        "recorded impressions envelope v1: ",
    ),
    (
        9402,
        lambda token: envelope(recorded_factory(None, 2, imp_id=token)),
        "recorded impressions envelope v1: 2 events without their offer_id",
    ),
]


@pytest.mark.parametrize(
    ("offer_id", "unreadable_record", "why"),
    UNREADABLE,
    ids=["unknown format byte", "broken JSON", "events without their offer"],
)
async def test_an_unreadable_envelope_goes_to_unreadable_records_and_the_export_goes_on(
    stack: RunningStack, offer_id: int, unreadable_record: Callable[[str], bytes], why: str
) -> None:
    """The record is copied, key and value untouched, to unreadable-records with
    headers saying where it was and why; the exporter logs it once, counts it, and
    exports the envelopes after it on the same partition."""
    unreadable = unreadable_record(os.urandom(8).hex())  # this run's, whatever came before
    after = recorded_factory(offer_id, 3)
    key = f"unreadable-{offer_id}".encode()
    before = stack.exported_status()
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.broker, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(TOPIC, unreadable, key=key, partition=0)
        await producer.send_and_wait(TOPIC, envelope(after[:2]), key=b"e1", partition=0)
        await producer.send_and_wait(TOPIC, envelope(after[2:]), key=b"e2", partition=0)
    finally:
        await producer.stop()

    expected = before["exported"]["impressions"] + 3
    assert stack.wait_exported(expected) == expected
    rows = stack.query(
        "SELECT aimp_id, sub1 FROM impressions WHERE offer_id = ? ORDER BY sub1", [offer_id]
    )
    assert rows == [(e["aimp_id"], e["sub1"]) for e in after]
    status = stack.exported_status()
    assert status["sent_to_unreadable"] == before["sent_to_unreadable"] + 1

    records = await unreadable_records(stack.settings.broker)
    (copy,) = [m for m in records if m.value == unreadable]
    assert copy.key == key
    headers = dict(copy.headers)
    assert headers[dead_letters.SOURCE_TOPIC] == TOPIC.encode()
    assert headers[dead_letters.SOURCE_PARTITION] == b"0"
    assert headers[dead_letters.SOURCE_OFFSET] == str(sent.offset).encode()
    reason = headers[dead_letters.REASON].decode()
    assert why in reason

    log = (stack.settings.log_dir / "exporter.log").read_text()
    said = f"unreadable record at {TOPIC}:0 offset {sent.offset} sent to {dead_letters.TOPIC}: "
    (line,) = [line for line in log.splitlines() if said in line]
    assert "ERROR" in line and line.endswith(said + reason)


async def test_a_json_record_it_cannot_read_goes_to_unreadable_records_too(
    stack: RunningStack,
) -> None:
    """On a topic of one JSON object a record (deliveries): text that is no JSON and
    an object of the wrong shape are copied with why, and the partition moves past
    them. They were dropped and counted before; a money field that was no number
    stopped the export."""
    topic = kinds.DELIVERIES.topic
    token = os.urandom(8).hex()
    bad = [b"{not json " + token.encode(), orjson.dumps({"aimp_id": token})]
    before = stack.exported_status()
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.broker, acks="all")
    await producer.start()
    try:
        sent = [await producer.send_and_wait(topic, value, partition=0) for value in bad]
    finally:
        await producer.stop()

    def moved_past() -> bool:
        status = stack.exported_status()
        return status["positions"].get(f"{topic}:0", 0) > sent[-1].offset

    deadline = time.monotonic() + 60
    while not moved_past():
        assert time.monotonic() < deadline, "the export did not move past the records"
        await asyncio.sleep(0.2)
    status = stack.exported_status()
    assert status["sent_to_unreadable"] == before["sent_to_unreadable"] + 2
    records = await unreadable_records(stack.settings.broker)
    # Keyless, so the copies may land on different partitions: read them by value.
    reasons = {
        m.value: dict(m.headers)[dead_letters.REASON].decode() for m in records if m.value in bad
    }
    assert sorted(reasons) == sorted(bad)
    assert reasons[bad[0]].startswith("deliveries record: not JSON (")
    assert reasons[bad[1]].startswith("deliveries record of the wrong shape: KeyError")
