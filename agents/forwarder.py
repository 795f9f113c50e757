"""The forwarder's agents: schedule each forward task and affiliate postback in Redis.

They only schedule (one Redis script per batch, replays recognised there);
delivering is the job of :class:`app.forwarding.forwarder.Forwarder`, a task of
the forwarder process (app.streams.forwarder), so a slow advertiser never holds up
the stream or its commits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import faust

from agents.batches import well_formed
from app.events import kinds
from app.events.kinds import EventKind
from app.events.topics import EventTopics

log = logging.getLogger("imptrack.forwarder")

BATCH_SIZE = 1000
BATCH_WINDOW_SECONDS = 0.05

Schedule = Callable[[list[Any], str], Awaitable[None]]
"""Schedules a batch of deliveries (named, for the logs); returns once they are
scheduled, however long Redis takes to answer."""


def schedule_deliveries(app: faust.App, topics: EventTopics, schedule: Schedule) -> list[Any]:
    """Declare the agents on ``app``: one for impressions' forward tasks, one for
    affiliate postbacks."""
    return [
        _scheduling(app, topics, kinds.FORWARD_TASKS, "forward tasks", schedule),
        _scheduling(app, topics, kinds.AFFILIATE_POSTBACKS, "affiliate postbacks", schedule),
    ]


def _scheduling(
    app: faust.App, topics: EventTopics, kind: EventKind, what: str, schedule: Schedule
) -> Any:
    id_field = kind.key
    if id_field is None:
        raise ValueError(f"{kind.topic}: deliveries are keyed by the ID they deliver")

    async def schedule_batches(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
            tasks = [e.value for e in well_formed(events, id_field, f"one of the {what}", log)]
            # The batch is not acknowledged until it is scheduled: waiting keeps it.
            await schedule(tasks, what)

    return app.agent(topics[kind], name=kind.topic)(schedule_batches)
