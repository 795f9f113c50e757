"""The edge's Kafka producer: batched sends, an answer only after the broker's ack."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from app.exceptions import ImptrackError


class BrokerUnavailable(ImptrackError):
    """The broker did not acknowledge an event in time; the event is not accepted."""


class EventProducer:
    """Concurrent requests share the producer's batches (``linger_ms``), so each
    request waits for its own ack without a broker round trip of its own."""

    def __init__(self, bootstrap: str, linger_ms: int, ack_timeout: float) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            # A send retried after a lost answer is not written twice.
            enable_idempotence=True,
            linger_ms=linger_ms,
            request_timeout_ms=int(ack_timeout * 1000),
            max_batch_size=256 * 1024,
        )
        self._ack_timeout = ack_timeout
        self.last_error: str | None = None

    async def start(self) -> None:
        await self._producer.start()

    async def partition_count(self, topic: str) -> int:
        """How many partitions ``topic`` has on the broker (0: no such topic)."""
        try:
            return len(await self._producer.partitions_for(topic) or ())
        except KafkaError:
            return 0

    async def stop(self) -> None:
        await self._producer.stop()

    async def produce(self, topic: str, key: str, value: bytes, partition: int) -> None:
        """Return once the broker has the event on ``partition``; raise
        :class:`BrokerUnavailable` if not."""
        try:
            async with asyncio.timeout(self._ack_timeout):
                ack = await self._producer.send(
                    topic, value=value, key=key.encode(), partition=partition
                )
                await ack
        except (KafkaError, TimeoutError) as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            raise BrokerUnavailable(self.last_error) from exc
        self.last_error = None
