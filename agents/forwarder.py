"""The forwarder: schedules each forward task and affiliate postback in Redis and
delivers what is due.

The agent only schedules (one Redis script per batch, replays recognised there);
delivering is the job of :class:`app.forwarding.forwarder.Forwarder`, a task of
every forwarder process (``imptrack forwarder``, see app.streams.faust_app), so a slow
advertiser never holds up the stream or its commits.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from functools import partial
from typing import Any

import orjson

from app.events.records import AFFILIATE_POSTBACK
from app.events.topics import (
    affiliate_postback_dead_letters_topic,
    affiliate_postback_deliveries_topic,
    affiliate_postbacks_topic,
    dead_letters_topic,
    deliveries_topic,
    forward_tasks_topic,
)
from app.forwarding.courier import Courier
from app.forwarding.forwarder import Forwarder, lease_seconds
from app.forwarding.outbox import DeliveryLogShipper
from app.forwarding.outcomes import FINAL_FAILURES
from app.forwarding.schedule import DeliverySchedule
from app.ids import is_valid_id
from app.ops.redis_retry import until_redis_answers
from app.settings import settings
from app.streams.faust_app import app
from app.streams.redis import worker_redis

log = logging.getLogger("imptrack.forwarder")

BATCH_SIZE = 1000
BATCH_WINDOW_SECONDS = 0.05

_s = settings()
_fs = _s.forwarding
schedule = DeliverySchedule(
    worker_redis(),
    dedup_seconds=_fs.dedup_seconds,
    host_concurrency=_fs.host_concurrency,
    breaker_failures=_fs.breaker_failures,
    breaker_seconds=_fs.breaker_seconds,
    lease_seconds=lease_seconds(_fs),
)
forwarder = Forwarder(_fs, schedule, Courier(_fs))


async def publish_delivery_log(records: list[bytes]) -> None:
    sent = []
    for record in records:
        attempt = orjson.loads(record)
        if attempt.get("kind") == AFFILIATE_POSTBACK:
            key = attempt["conversion_id"]
            log_topic, dead_topic = (
                affiliate_postback_deliveries_topic,
                affiliate_postback_dead_letters_topic,
            )
        else:
            key, log_topic, dead_topic = attempt["aimp_id"], deliveries_topic, dead_letters_topic
        sent.append(await log_topic.send(key=key, value=record))
        if attempt["outcome"] in FINAL_FAILURES:
            sent.append(await dead_topic.send(key=key, value=record))
    await asyncio.gather(*sent)


shipper = DeliveryLogShipper(
    schedule,
    f"{socket.gethostname()}:{_s.instance_port(_s.forwarder_web_port)}",
    publish_delivery_log,
)


async def _schedule(stream: Any, id_field: str, what: str) -> None:
    async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
        tasks = [e.value for e in events if is_valid_id(getattr(e.value, id_field))]
        if len(tasks) < len(events):
            log.error("skipped %d %s with a malformed %s", len(events) - len(tasks), what, id_field)
        # The batch is not acknowledged until it is scheduled: waiting keeps it.
        await until_redis_answers(partial(schedule.enqueue, tasks), f"schedule {what}", log)
        forwarder.wake()


@app.agent(forward_tasks_topic)
async def schedule_deliveries(stream: Any) -> None:
    await _schedule(stream, "aimp_id", "forward tasks")


@app.agent(affiliate_postbacks_topic)
async def schedule_affiliate_postbacks(stream: Any) -> None:
    await _schedule(stream, "conversion_id", "affiliate postbacks")


@app.task  # type: ignore[untyped-decorator]
async def deliver() -> None:
    await forwarder.run()


@app.task  # type: ignore[untyped-decorator]
async def ship_delivery_log() -> None:
    await shipper.run()
