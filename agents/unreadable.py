"""Setting aside a record an agent cannot read (app.events.dead_letters)."""

from __future__ import annotations

import logging
from typing import Any

from app.events import dead_letters, kinds
from app.events.topics import EventTopics


async def set_aside(topics: EventTopics, event: Any, reason: str, log: logging.Logger) -> Any:
    """Copy ``event``'s record, key and value as they came, to ``unreadable-records``
    with where it came from and why, and log it; return the send's ack, which the
    agent awaits before its batch is acknowledged (so the record is never lost)."""
    message = event.message
    dead_letters.log_sent(log, message.topic, message.partition, message.offset, reason)
    return await topics[kinds.UNREADABLE].send(
        key=event.key,
        value=event.value,
        headers=dead_letters.headers(message.topic, message.partition, message.offset, reason),
    )
