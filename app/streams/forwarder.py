"""The forwarder process (``imptrack forwarder``): built from its settings.

Data passes through it in this order: the worker's ``forward-tasks`` and
``affiliate-postbacks`` topics → the scheduling agents (agents/forwarder.py) → the
delivery schedule in Redis (app.forwarding.schedule) → the forwarder task
delivering what is due (app.forwarding.forwarder, app.forwarding.courier) → the
delivery log in Redis → the shipper publishing it to the ``deliveries`` and
dead-letter topics (app.forwarding.outbox), which the exporter reads.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Sequence
from functools import partial

import faust
import orjson

from agents.forwarder import schedule_deliveries
from app.events import kinds
from app.events.records import AFFILIATE_POSTBACK
from app.events.topics import EventTopics
from app.forwarding.courier import Courier
from app.forwarding.forwarder import Forwarder, lease_seconds
from app.forwarding.outbox import DeliveryLogShipper
from app.forwarding.outcomes import FINAL_FAILURES
from app.forwarding.schedule import DeliverySchedule, TaskGroup
from app.metrics.state import GroupLag
from app.ops.redis_retry import until_redis_answers
from app.settings import Settings
from app.streams import forwarder_views
from app.streams.faust_app import Role, build_faust_app, redis_client

log = logging.getLogger("imptrack.forwarder")

PUBLISH_SLICE = 50
"""Delivery log records sent between two turns of the event loop."""


def build_forwarder(settings: Settings) -> faust.App:
    web_port = settings.instance_port(settings.forwarder_web_port)
    app = build_faust_app(
        settings,
        # The forwarder only reads (its effects are deduplicated in Redis).
        Role(kinds.FORWARDER_APP_ID, settings.forwarder_data_dir, web_port, "at_least_once"),
    )
    topics = EventTopics(app)
    forwarding = settings.forwarding
    schedule = DeliverySchedule(
        redis_client(settings),
        dedup_seconds=forwarding.dedup_seconds,
        host_concurrency=forwarding.host_concurrency,
        breaker_failures=forwarding.breaker_failures,
        breaker_seconds=forwarding.breaker_seconds,
        lease_seconds=lease_seconds(forwarding),
    )
    forwarder = Forwarder(forwarding, schedule, Courier(forwarding))

    async def enqueue(groups: Sequence[TaskGroup], what: str) -> None:
        await until_redis_answers(partial(schedule.enqueue_groups, groups), f"schedule {what}", log)
        forwarder.wake()

    schedule_deliveries(app, topics, enqueue)
    shipper = DeliveryLogShipper(
        schedule, f"{socket.gethostname()}:{web_port}", partial(publish_delivery_log, topics)
    )
    app.task(forwarder.run)
    app.task(shipper.run)
    forwarder_views.serve(
        app, forwarder, shipper, GroupLag(settings.broker, kinds.FORWARDER_APP_ID)
    )
    return app


async def publish_delivery_log(topics: EventTopics, records: list[bytes]) -> None:
    """Publish delivery attempts (as the forwarder logged them in Redis) to their
    delivery log topic, and the final failures to its dead letters too."""
    sent = []
    for n, record in enumerate(records, start=1):
        if n % PUBLISH_SLICE == 0:
            # A send does not yield: hundreds in a row held every delivery's
            # response, its recording and the next claim waiting behind them.
            await asyncio.sleep(0)
        attempt = orjson.loads(record)
        if attempt.get("kind") == AFFILIATE_POSTBACK:
            key = attempt["conversion_id"]
            log_kind, dead_kind = (
                kinds.AFFILIATE_POSTBACK_DELIVERIES,
                kinds.AFFILIATE_POSTBACK_DEAD_LETTERS,
            )
        else:
            key, log_kind, dead_kind = attempt["aimp_id"], kinds.DELIVERIES, kinds.DEAD_LETTERS
        sent.append(await topics[log_kind].send(key=key, value=record))
        if attempt["outcome"] in FINAL_FAILURES:
            sent.append(await topics[dead_kind].send(key=key, value=record))
    await asyncio.gather(*sent)
