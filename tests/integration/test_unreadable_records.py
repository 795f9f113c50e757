"""A record the worker cannot read (an envelope of a format it does not know, a
broken one) goes to ``unreadable-records`` as it came, with where it was and why,
and a log line saying so; the impressions after it are recorded as usual."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaProducer

from app.events import dead_letters, kinds
from tests.integration.conftest import RunningStack
from tests.integration.pixels import pixel_params, send_pixels
from tests.integration.unreadable import set_aside

pytestmark = pytest.mark.integration

UNKNOWN_FORMAT = b"\x7f" + b'[["from a newer imptrack"]]'
BROKEN = b"\x01[[1, 2"


async def test_unreadable_impressions_are_set_aside_and_the_rest_recorded(
    stack: RunningStack,
) -> None:
    broker = stack.settings.broker
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all")
    await producer.start()
    try:
        unknown = await producer.send_and_wait(
            kinds.IMPRESSIONS.topic, UNKNOWN_FORMAT, key=b"u-format", partition=1
        )
        broken = await producer.send_and_wait(
            kinds.IMPRESSIONS.topic, BROKEN, key=b"u-broken", partition=1
        )
    finally:
        await producer.stop()
    before = stack.exported_impressions()
    run = await send_pixels(stack, pixel_params(40, offer_id=1, prefix="after-unreadable"))
    assert len(run.accepted) == 40
    assert stack.wait_exported(before + 40) == before + 40

    aside = await set_aside(broker, {b"u-format", b"u-broken"}, 60)
    for key, sent, metadata in (
        (b"u-format", UNKNOWN_FORMAT, unknown),
        (b"u-broken", BROKEN, broken),
    ):
        value, headers = aside[key]
        assert value == sent
        assert headers[dead_letters.SOURCE_TOPIC] == kinds.IMPRESSIONS.topic
        assert headers[dead_letters.SOURCE_PARTITION] == "1"
        assert headers[dead_letters.SOURCE_OFFSET] == str(metadata.offset)
    assert aside[b"u-format"][1][dead_letters.REASON] == (
        "impressions envelope of format 127, which this imptrack does not know (it reads 1)"
    )
    assert aside[b"u-broken"][1][dead_letters.REASON].startswith("impressions envelope v1: ")

    log = (stack.settings.log_dir / "worker.log").read_text(errors="replace")
    assert (
        f"unreadable record at impressions:1 offset {unknown.offset} sent to "
        "unreadable-records: impressions envelope of format 127" in log
    )
