"""A forward-tasks record the forwarder cannot read (an envelope of a format it does
not know, a broken one) goes to ``unreadable-records`` as it came, with where it was
and why, and a line in the forwarder's log saying so; the envelopes after it on the
same partition are delivered, each task once."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest
from aiokafka import AIOKafkaProducer

from app.events import dead_letters, kinds
from app.events.records import ForwardTask
from app.ids import IdGenerator
from tests.integration.advertiser import AdvertiserSink
from tests.integration.conftest import RunningStack
from tests.integration.unreadable import set_aside

pytestmark = pytest.mark.integration

OFFER = 9500
PARTITION = 2
UNKNOWN_FORMAT = b"\x7f" + b'[["from a newer imptrack"]]'
BROKEN = b"\x01[[1, 2"
PATH = "/ok/after-unreadable-forward-tasks"


def _envelope(stack: RunningStack, advertiser: AdvertiserSink, count: int) -> tuple[str, bytes]:
    """An envelope of ``count`` forward tasks as the impressions agent writes one (its
    key and value), to the advertiser's sink."""
    ids = IdGenerator(stack.id_seal).open_envelope(PARTITION)
    destination = advertiser.url(PATH + "?a={aimp_id}")
    tasks = []
    for slot in range(count):
        aimp_id = ids.id(slot)
        tasks.append(
            ForwardTask(
                aimp_id=aimp_id,
                offer_id=OFFER,
                pid=1,
                advertiser_id=1,
                destination=destination,
                url=destination.replace("{aimp_id}", aimp_id),
            ).asdict()
        )
    return ids.key, kinds.FORWARD_TASKS.enveloped.current.encode_rows(tasks)


async def test_unreadable_forward_tasks_are_set_aside_and_the_next_envelopes_delivered(
    stack: RunningStack, advertiser: AdvertiserSink
) -> None:
    envelopes = [_envelope(stack, advertiser, count) for count in (30, 25)]
    producer = AIOKafkaProducer(bootstrap_servers=stack.settings.broker, acks="all")
    await producer.start()
    try:
        unknown = await producer.send_and_wait(
            kinds.FORWARD_TASKS.topic, UNKNOWN_FORMAT, key=b"fwd-u-format", partition=PARTITION
        )
        broken = await producer.send_and_wait(
            kinds.FORWARD_TASKS.topic, BROKEN, key=b"fwd-u-broken", partition=PARTITION
        )
        for key, value in envelopes:
            await producer.send_and_wait(
                kinds.FORWARD_TASKS.topic, value, key=key.encode(), partition=PARTITION
            )
    finally:
        await producer.stop()
    expected = {
        task["aimp_id"]
        for _, value in envelopes
        for task in kinds.FORWARD_TASKS.enveloped.decode(value).rows()
    }

    deadline = time.monotonic() + 60
    # The advertiser's server runs in a thread of its own: no event to await here.
    while not expected <= set(advertiser.delivered(PATH)) and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)  # a second delivery of any would arrive now
    assert advertiser.delivered(PATH) == Counter({aimp_id: 1 for aimp_id in expected})

    aside = await set_aside(stack.settings.broker, {b"fwd-u-format", b"fwd-u-broken"}, 30)
    for key, sent, metadata in (
        (b"fwd-u-format", UNKNOWN_FORMAT, unknown),
        (b"fwd-u-broken", BROKEN, broken),
    ):
        value, headers = aside[key]
        assert value == sent
        assert headers[dead_letters.SOURCE_TOPIC] == kinds.FORWARD_TASKS.topic
        assert headers[dead_letters.SOURCE_PARTITION] == str(PARTITION)
        assert headers[dead_letters.SOURCE_OFFSET] == str(metadata.offset)
    unknown_reason = (
        "forward tasks envelope of format 127, which this imptrack does not know (it reads 1)"
    )
    assert aside[b"fwd-u-format"][1][dead_letters.REASON] == unknown_reason
    broken_reason = aside[b"fwd-u-broken"][1][dead_letters.REASON]
    assert broken_reason.startswith("forward tasks envelope v1: ")

    log = (stack.settings.log_dir / "forwarder.log").read_text(errors="replace")
    for metadata, reason in ((unknown, unknown_reason), (broken, broken_reason)):
        line = (
            f"unreadable record at {kinds.FORWARD_TASKS.topic}:{PARTITION} offset "
            f"{metadata.offset} sent to {dead_letters.TOPIC}: {reason}"
        )
        assert line in log
