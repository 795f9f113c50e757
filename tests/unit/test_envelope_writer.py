"""The edge's envelopes (app/edge/envelope_writer.py): what closes one, what each
pixel waits for, and that every waiting pixel gets an answer. The producer is a
stand-in (pure logic: no broker); tests/integration covers the real one."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from app.edge.envelope_writer import MAX_ENVELOPE_CHARS, EnvelopeWriter
from app.edge.placement import Placement
from app.edge.producer import BrokerUnavailable
from app.events import kinds
from app.ids import IdGenerator
from tests.ids import TEST_SEAL

FORMAT = kinds.IMPRESSIONS.enveloped.current


class Producer:
    """Keeps what is produced; each produce waits until ``release`` is set, then
    raises ``fails`` if one is given."""

    def __init__(self, fails: Exception | None = None) -> None:
        self.sent: list[tuple[str, str, bytes, int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fails = fails

    async def produce(self, topic: str, key: str, value: bytes, partition: int) -> None:
        self.sent.append((topic, key, value, partition))
        await self.release.wait()
        if self.fails is not None:
            raise self.fails


def _writer(producer: Producer, max_events: int = 3, linger_ms: float = 50.0) -> EnvelopeWriter:
    placement = Placement(IdGenerator(TEST_SEAL), 4)
    return EnvelopeWriter(producer, placement, "impressions", FORMAT, max_events, linger_ms)  # type: ignore[arg-type]


def _row(n: int, **fields: Any) -> dict[str, Any]:
    return {"offer_id": 5, "pid": 3, "imp_id": f"i-{n}", **fields}


async def test_an_envelope_closes_when_full_and_each_id_names_its_slot() -> None:
    producer = Producer()
    writer = _writer(producer, max_events=3)
    added = [writer.add(_row(n)) for n in range(4)]
    await asyncio.gather(*(acked for _, acked in added[:3]))
    ((topic, key, value, partition),) = producer.sent
    envelope = kinds.IMPRESSIONS.enveloped.decode(value)
    assert topic == "impressions"
    assert envelope["aimp_id"] == [aimp_id for aimp_id, _ in added[:3]]
    assert envelope["imp_id"] == ["i-0", "i-1", "i-2"]
    for slot, (aimp_id, _) in enumerate(added[:3]):
        parts = TEST_SEAL.parts(aimp_id)
        assert parts is not None
        assert (parts.envelope_key, parts.partition, parts.slot) == (key, partition, slot)
    # The fourth opened the next envelope, on the next partition, sent when its time is up.
    await added[3][1]
    assert len(producer.sent) == 2
    assert producer.sent[1][3] == (partition + 1) % 4


async def test_an_envelope_closes_after_its_linger_and_no_pixel_is_answered_before_the_ack() -> (
    None
):
    producer = Producer()
    producer.release.clear()
    writer = _writer(producer, max_events=100, linger_ms=20)
    _, acked = writer.add(_row(0))
    waiting = asyncio.ensure_future(acked)
    await asyncio.sleep(0.1)
    assert len(producer.sent) == 1  # sent after 20 ms, not full
    assert not waiting.done()  # the broker has not acknowledged it yet
    producer.release.set()
    await asyncio.wait_for(waiting, 1)


async def test_an_envelope_closes_before_it_outgrows_a_kafka_record() -> None:
    producer = Producer()
    writer = _writer(producer, max_events=512, linger_ms=1000)
    huge = "x" * 2500  # a User-Agent and subs at their limits
    added = [writer.add(_row(n, ua=huge)) for n in range(200)]
    await asyncio.gather(*(acked for _, acked in added))
    assert len(producer.sent) > 1
    assert all(len(value) < 1_000_000 for _, _, value, _ in producer.sent)
    assert sum(len(kinds.IMPRESSIONS.enveloped.decode(v)) for *_, v, _ in producer.sent) == 200
    assert MAX_ENVELOPE_CHARS * 3 < 1_000_000


@pytest.mark.parametrize(
    "fails",
    [BrokerUnavailable("KafkaTimeoutError: no ack"), AssertionError("Unrecognized partition")],
    ids=["broker", "client"],
)
async def test_every_pixel_of_an_envelope_not_acknowledged_gets_broker_unavailable(
    fails: Exception,
) -> None:
    """Whatever stopped the envelope (the broker, or the client itself), each of its
    pixels is answered: a 503 (BrokerUnavailable), never a hang."""
    writer = _writer(Producer(fails=fails), max_events=2)
    added = [writer.add(_row(n)) for n in range(2)]
    for _, acked in added:
        with pytest.raises(BrokerUnavailable):
            await asyncio.wait_for(acked, 1)


async def test_a_pixel_whose_client_went_away_does_not_cancel_the_others() -> None:
    producer = Producer()
    producer.release.clear()
    writer = _writer(producer, max_events=2)
    (_, gone), (_, stays) = writer.add(_row(0)), writer.add(_row(1))
    gone_task, stays_task = asyncio.ensure_future(gone), asyncio.ensure_future(stays)
    await asyncio.sleep(0)
    gone_task.cancel()
    producer.release.set()
    await asyncio.wait_for(stays_task, 1)
    await writer.flush()


async def test_an_impression_placed_on_a_partition_joins_that_partitions_envelope() -> None:
    """One with an imp_id must live on its hash's partition (where a click naming the
    imp_id looks); one without joins the envelope opened last, whichever it is."""
    producer = Producer()
    writer = _writer(producer, max_events=3, linger_ms=1000)
    on_2 = writer.add(_row(0), partition=2)
    on_3 = writer.add(_row(1), partition=3)
    anywhere = writer.add(_row(2, imp_id=None))
    also_on_2 = writer.add(_row(3), partition=2)
    for aimp_id, partition in ((on_2[0], 2), (on_3[0], 3), (anywhere[0], 3), (also_on_2[0], 2)):
        assert TEST_SEAL.partition(aimp_id) == partition
    await writer.flush()
    sent = {
        partition: kinds.IMPRESSIONS.enveloped.decode(v) for _, _, v, partition in producer.sent
    }
    assert sorted(sent) == [2, 3]
    assert sent[2]["imp_id"] == ["i-0", "i-3"]
    assert sent[3]["imp_id"] == ["i-1", None]
    # Each envelope closes on its own: a full one on partition 2 leaves 3's open.
    full = [writer.add(_row(n), partition=2) for n in range(3)]
    left_open = writer.add(_row(9), partition=3)
    await asyncio.gather(*(acked for _, acked in full))
    assert [p for *_, p in producer.sent[2:]] == [2]
    await writer.flush()
    await left_open[1]
    assert [p for *_, p in producer.sent[2:]] == [2, 3]
