"""The forwarder's agents: schedule impressions' forward tasks and affiliate postbacks
in Redis.

They only schedule; delivering is the job of :class:`app.forwarding.forwarder.Forwarder`,
a task of the forwarder process (app.streams.forwarder), so a slow advertiser never
holds up the stream or its commits.

A ``forward-tasks`` record is an envelope of tasks (app.events.envelopes): a batch
of them is scheduled in one Redis round trip, one script per envelope, replays
recognised there. A record that is no envelope this imptrack can read is copied as
it is to ``unreadable-records`` (app.events.dead_letters) and acknowledged once the
copy is on the broker: never dropped, never stopping its partition.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from agents.batches import well_formed
from app.events import dead_letters, kinds
from app.events.envelopes import UnreadableEnvelope
from app.events.topics import EventTopics
from app.ids import is_valid_id

log = logging.getLogger("imptrack.forwarder")

BATCH_SIZE = 1000
BATCH_WINDOW_SECONDS = 0.05

Schedule = Callable[[Sequence[Sequence[Any]], str], Awaitable[None]]
"""Schedules groups of deliveries (named, for the logs), one Redis script a group and
all of them in one round trip; returns once they are scheduled, however long Redis
takes to answer. A group is an envelope's forward tasks (as dicts of their fields),
or a batch of affiliate postbacks (records)."""


def schedule_deliveries(app: faust.App, topics: EventTopics, schedule: Schedule) -> list[Any]:
    """Declare the agents on ``app``: one for impressions' forward tasks, one for
    affiliate postbacks."""
    return [_forward_tasks(app, topics, schedule), _affiliate_postbacks(app, topics, schedule)]


def envelope_tasks(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The forward tasks of one envelope as dicts of their fields, and how many were
    left out for a malformed ``aimp_id``; :class:`UnreadableEnvelope` if ``data`` is
    no forward-task envelope this imptrack reads."""
    tasks = list(kinds.FORWARD_TASKS.enveloped.decode(data).rows())
    kept = [t for t in tasks if isinstance(t["aimp_id"], str) and is_valid_id(t["aimp_id"])]
    return kept, len(tasks) - len(kept)


def _forward_tasks(app: faust.App, topics: EventTopics, schedule: Schedule) -> Any:
    kind = kinds.FORWARD_TASKS
    unreadable = topics[kinds.UNREADABLE]

    async def schedule_envelopes(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
            groups = []
            copies = []
            for event in events:
                message = event.message
                try:
                    tasks, malformed = envelope_tasks(message.value)
                except UnreadableEnvelope as exc:
                    reason = str(exc)
                    headers = dead_letters.headers(
                        message.topic, message.partition, message.offset, reason
                    )
                    sent = await unreadable.send(
                        key=message.key, value=message.value, headers=headers
                    )
                    copies.append((sent, message, reason))
                    continue
                if malformed:
                    log.error(
                        "left out %d forward tasks with a malformed aimp_id at %s:%d offset %d",
                        malformed,
                        message.topic,
                        message.partition,
                        message.offset,
                    )
                if tasks:
                    groups.append(tasks)
            # The batch is not acknowledged until it is scheduled and every unreadable
            # record of it is on the broker: waiting keeps it.
            if groups:
                await schedule(groups, "forward tasks")
            for sent, message, reason in copies:
                await sent
                dead_letters.log_sent(log, message.topic, message.partition, message.offset, reason)

    return app.agent(topics[kind], name=kind.topic)(schedule_envelopes)


def _affiliate_postbacks(app: faust.App, topics: EventTopics, schedule: Schedule) -> Any:
    kind = kinds.AFFILIATE_POSTBACKS
    id_field = kind.key
    if id_field is None:
        raise ValueError(f"{kind.topic}: deliveries are keyed by the ID they deliver")

    async def schedule_batches(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
            tasks = [
                e.value
                for e in well_formed(events, id_field, "one of the affiliate postbacks", log)
            ]
            if tasks:
                # The batch is not acknowledged until it is scheduled: waiting keeps it.
                await schedule([tasks], "affiliate postbacks")

    return app.agent(topics[kind], name=kind.topic)(schedule_batches)
