"""Writing catalog changes to the ``catalog`` topic."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from app.catalog.changes import Change
from app.events import kinds
from app.exceptions import CatalogUnavailable


class CatalogWriter:
    def __init__(self, bootstrap: str, timeout: float, topic: str = kinds.CATALOG_TOPIC) -> None:
        self.topic = topic
        self._timeout = timeout
        self._producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            # A send retried after a lost answer is not written twice.
            enable_idempotence=True,
            linger_ms=0,
            request_timeout_ms=int(timeout * 1000),
        )

    async def start(self) -> None:
        await self._producer.start()

    async def stop(self) -> None:
        await self._producer.stop()

    async def write(self, changes: list[Change]) -> tuple[int, int]:
        """Write ``changes`` in order; return the (partition, offset) of the last one.

        Each record is acknowledged before the next is sent, so the order holds
        whatever the producer retries.
        """
        if not changes:
            raise ValueError("no catalog changes to write")
        try:
            for change in changes:
                key, value = change.encode()
                async with asyncio.timeout(self._timeout):
                    meta = await self._producer.send_and_wait(self.topic, value=value, key=key)
        except (KafkaError, TimeoutError) as exc:
            raise CatalogUnavailable(
                f"the catalog topic did not acknowledge a change ({type(exc).__name__}: {exc})"
            ) from exc
        return meta.partition, meta.offset
