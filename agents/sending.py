"""Sending an agent's outputs of one kind as one envelope per batch
(app.events.envelopes): one Kafka record, and one send, for all of them (more only
when they would not fit in one record)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.events.envelopes import within_bytes
from app.events.kinds import EventKind
from app.events.topics import EventTopics


async def send_records(topics: EventTopics, kind: EventKind, records: Sequence[Any]) -> list[Any]:
    """Send ``records`` of ``kind`` as envelopes, each keyed by its first record's ID
    (its ``kind.key``); return the sends' acks, to await before the batch is
    acknowledged (none when there is nothing to send)."""
    if not records:
        return []
    key = str(kind.key)
    return [
        await topics[kind].send(key=getattr(held[0], key), value=value)
        for held, value in within_bytes(kind.enveloped.current.encode_records, records)
    ]
