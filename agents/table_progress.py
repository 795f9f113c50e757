"""Whether a table holds every event its agent's input had before a given moment.

A postback is read by the worker that holds the partition of the click or
impression it names, but by another agent than the one writing that click or
impression into its table. The postbacks topic is small: after a restart, or
whenever the worker lags, it is read well ahead of the impressions and clicks
(the crash suite saw a restarted worker decide postbacks 15 s before it reached
the impressions they named, and refuse them as unknown). So a postback that does
not find what it names is refused only once the table is known to hold every
event the edge accepted before the postback (agents/postbacks.py).
"""

from __future__ import annotations

from typing import Any, cast

import faust
from faust.types import TP

from agents.batches import envelope_time, id_time
from app.compat.faust_consumer import CurrentGenerationConsumer
from app.events.kinds import EventKind

CLOCK_SKEW_MS = 500
"""How far the clocks that time IDs (the edge processes') and fetch answers (this
worker's) may disagree, plus a fetch's round trip; one host's clocks agree."""


class TableInput:
    """The input topic of one table's agent, whose events carry their time-ordered
    ID in ``id_field`` (or, carried in envelopes, are keyed by their envelope's
    time-ordered key), and how far the agent has written it into the table."""

    def __init__(self, app: faust.App, kind: EventKind) -> None:
        if kind.key is None:
            raise ValueError(f"{kind.topic}: a table's input is keyed by its time-ordered ID")
        self.topic = kind.topic
        self.id_field = kind.key
        self._accepted = envelope_time if kind.envelope is not None else id_time(kind.key)
        self._app = app
        # partition -> the newest ID time (ms) written from it.
        self._newest_ms: dict[int, int] = {}

    def processed(self, events: list[Any]) -> None:
        """``events`` (taken from the stream in order) are in the table."""
        consumer = self._consumer()
        for event in events:
            message = event.message
            consumer.processed(message.tp, message.offset)
            ms = self._accepted(event)
            if ms is not None and ms > self._newest_ms.get(message.partition, 0):
                self._newest_ms[message.partition] = ms

    def holds_everything_before(self, partition: int, ms: int) -> bool:
        """Whether every event appended to ``partition`` before ``ms`` (by the edge's
        clock) is in the table: the agent wrote an event the edge accepted later
        (events of a partition are written in order), or a fetch answered later
        found nothing beyond what the agent wrote."""
        due = ms + CLOCK_SKEW_MS
        if self._newest_ms.get(partition, 0) >= due:
            return True
        return self._consumer().processed_up_to_end(TP(self.topic, partition), due)

    def _consumer(self) -> CurrentGenerationConsumer:
        return cast(CurrentGenerationConsumer, self._app.consumer)
