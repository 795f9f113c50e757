"""The event kinds as topics of one Faust app (the worker's or the forwarder's)."""

from __future__ import annotations

from typing import Any

import faust

from app.events.kinds import EVENTS, EventKind


class EventTopics:
    """Each event kind's Faust topic in one app.

    Keys are the raw ID bytes, exactly as the edge sends them, so the producer's
    partitioner places a key on the same partition in every topic and table. A kind
    published already serialized (the delivery logs) or carried in envelopes is sent
    and read as raw bytes.
    """

    def __init__(self, app: faust.App) -> None:
        self._topics = {kind.topic: _declare(app, kind) for kind in EVENTS}

    def __getitem__(self, kind: EventKind) -> Any:
        return self._topics[kind.topic]


def _declare(app: faust.App, kind: EventKind) -> Any:
    if kind.serialized or kind.envelope is not None:
        return app.topic(
            kind.topic,
            key_type=str,
            key_serializer="raw",
            value_type=bytes,
            value_serializer="raw",
        )
    return app.topic(kind.topic, key_type=str, key_serializer="raw", value_type=kind.record)
