"""Getting a postback's verdict from the worker that decided it back to the edge
process holding the advertiser's request.

Each edge process subscribes to a Redis channel of its own and names it in every
postback it produces (``reply_to``); the worker publishes the verdict there once
the outcome is on the broker. Pub/sub keeps no messages, and need not: the edge
waits a bounded time and otherwise answers "pending", and the outcome is in the
``postback-outcomes`` topic (and the Server postbacks slice) either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

log = logging.getLogger("imptrack.verdicts")

CHANNEL_PREFIX = "imptrack:verdicts:"
RESUBSCRIBE_SECONDS = 0.5


def reply_channel() -> str:
    """A channel name no other edge process uses."""
    return f"{CHANNEL_PREFIX}{os.getpid()}-{os.urandom(4).hex()}"


async def publish_verdicts(
    client: aioredis.Redis, verdicts: Iterable[tuple[str, str, dict[str, Any]]]
) -> None:
    """Publish ``(reply_to, postback_id, body)`` verdicts, one round trip in all."""
    async with client.pipeline(transaction=False) as pipe:
        for channel, postback_id, body in verdicts:
            pipe.publish(channel, orjson.dumps({"postback_id": postback_id, "verdict": body}))
        await pipe.execute()


class VerdictWaiter:
    """The edge side: one subscription per process, one future per waiting request."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client
        self.channel = reply_channel()
        self._waiting: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._task: asyncio.Task[None] | None = None
        self.subscribed = asyncio.Event()
        self.last_error: str | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="postback-verdicts")
        # Not required to serve (a postback without a verdict is answered
        # "pending"), but normally the subscription is there before the first one.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.subscribed.wait(), timeout=5)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def expect(self, postback_id: str) -> asyncio.Future[dict[str, Any]]:
        """Register before producing the postback, so a fast verdict is not missed."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[postback_id] = future
        return future

    def forget(self, postback_id: str) -> None:
        future = self._waiting.pop(postback_id, None)
        if future is not None and not future.done():
            future.cancel()

    async def _listen(self) -> None:
        while True:
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                self.subscribed.set()
                self.last_error = None
                async for message in pubsub.listen():
                    self._deliver(message.get("data"))
            except (RedisError, OSError) as exc:
                # Verdicts sent meanwhile are lost to this process; their requests
                # are answered "pending" and the outcome is in the log regardless.
                self.subscribed.clear()
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("postback verdict subscription lost (%s); resubscribing", exc)
                await asyncio.sleep(RESUBSCRIBE_SECONDS)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _deliver(self, data: Any) -> None:
        try:
            message = orjson.loads(data)
            postback_id, body = message["postback_id"], message["verdict"]
        except (orjson.JSONDecodeError, TypeError, KeyError):
            log.error("ignored a malformed verdict message: %r", data)
            return
        future = self._waiting.pop(postback_id, None)
        if future is not None and not future.done():
            future.set_result(body)
