"""Publishing the delivery log: from the Redis stream the schedule appends to, to
Kafka (``deliveries``, and ``forward-dead-letters`` for deliveries given up on).

An entry is acknowledged and deleted only once Kafka has it, so a crash publishes
some entries twice, never none; the exporter keeps one row per attempt.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from app.forwarding.schedule import DeliverySchedule, LogEntry
from app.ops.redis_retry import REDIS_RETRY_SECONDS

log = logging.getLogger("imptrack.forwarder")

BATCH = 500
BLOCK_MS = 200
# Entries a shipper read and did not acknowledge for this long belonged to a
# shipper that died (a live one acknowledges within a produce round trip).
ADOPT_AFTER_MS = 60_000
ADOPT_EVERY_SECONDS = 15.0

Publish = Callable[[list[bytes]], Awaitable[None]]


class DeliveryLogShipper:
    def __init__(self, schedule: DeliverySchedule, consumer: str, publish: Publish) -> None:
        self.schedule = schedule
        # A name stable across restarts of the same forwarder, so it finds what it had
        # read and not acknowledged before a crash at once.
        self.consumer = consumer
        self.publish = publish
        self.shipped = 0

    async def run(self) -> None:
        pending = True
        adopted_at = 0.0
        while True:
            try:
                if pending:
                    await self.schedule.ensure_log_group()
                    entries = await self.schedule.read_log(self.consumer, BATCH, 0, pending=True)
                    pending = bool(entries)
                elif time.monotonic() - adopted_at > ADOPT_EVERY_SECONDS:
                    adopted_at = time.monotonic()
                    entries = await self.schedule.adopt_stale_log(
                        self.consumer, ADOPT_AFTER_MS, BATCH
                    )
                else:
                    entries = await self.schedule.read_log(self.consumer, BATCH, BLOCK_MS)
                await self._ship(entries)
            except (RedisError, KafkaError, TimeoutError) as exc:
                # Unacknowledged entries stay in the stream; they are read again. The
                # broker is waited for as long as Redis: one pause, whichever failed.
                log.warning("cannot ship the delivery log (%s); retrying", exc)
                pending = True
                await asyncio.sleep(REDIS_RETRY_SECONDS)

    async def _ship(self, entries: list[LogEntry]) -> None:
        if not entries:
            return
        await self.publish([entry.record for entry in entries])
        await self.schedule.ack_log([entry.id for entry in entries])
        self.shipped += len(entries)
