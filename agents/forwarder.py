"""The forwarder's agents: schedule impressions' forward tasks and affiliate postbacks
in Redis.

They only schedule; delivering is the job of :class:`app.forwarding.forwarder.Forwarder`,
a task of the forwarder process (app.streams.forwarder), so a slow advertiser never
holds up the stream or its commits.

A ``forward-tasks`` record is an envelope of tasks (app.events.envelopes): a batch
of them is scheduled in one Redis round trip, one script per envelope, replays
recognised there by the impressions record each was made from (its headers). A
record that is no envelope this imptrack can read, or holds a malformed task, is
copied as it is to ``unreadable-records`` (app.events.dead_letters) and acknowledged
once the copy is on the broker: never dropped, never stopping its partition.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust

from agents.batches import envelope_time, well_formed
from agents.unreadable import set_aside
from app.events import kinds
from app.events.envelopes import UnreadableEnvelope
from app.events.provenance import source_of
from app.events.records import IMPRESSION
from app.events.topics import EventTopics
from app.forwarding.schedule import SourceMark, TaskGroup
from app.ids import is_valid_id
from app.metrics import pipeline as metrics

log = logging.getLogger("imptrack.forwarder")

BATCH_SIZE = 1000
BATCH_WINDOW_SECONDS = 0.05

Schedule = Callable[[Sequence[TaskGroup], str], Awaitable[None]]
"""Schedules groups of deliveries (named, for the logs), one Redis script a group and
all of them in one round trip; returns once they are scheduled, however long Redis
takes to answer. A group is an envelope's forward tasks (as dicts of their fields,
with the record they were made from), or a batch of affiliate postbacks (records)."""


def schedule_deliveries(app: faust.App, topics: EventTopics, schedule: Schedule) -> list[Any]:
    """Declare the agents on ``app``: one for impressions' forward tasks, one for
    affiliate postbacks."""
    return [_forward_tasks(app, topics, schedule), _affiliate_postbacks(app, topics, schedule)]


def envelope_tasks(data: bytes) -> list[dict[str, Any]]:
    """The forward tasks of one envelope, as dicts of their fields.

    :class:`UnreadableEnvelope` if ``data`` is no forward-task envelope this imptrack
    reads, or one of its tasks is not well formed: only the worker writes them, so
    such a task is not ours to guess at, and its whole envelope is set aside (as the
    impressions agent sets aside an envelope of impressions).
    """
    envelope = kinds.FORWARD_TASKS.enveloped.decode(data)
    if not all(isinstance(v, str) and is_valid_id(v) for v in envelope["aimp_id"]):
        raise UnreadableEnvelope("a forward task's aimp_id is not an ID")
    for name in ("offer_id", "pid", "advertiser_id"):
        if not all(type(value) is int for value in envelope[name]):
            raise UnreadableEnvelope(f"a forward task's {name} is not a whole number")
    for name in ("destination", "url"):
        if not all(isinstance(value, str) for value in envelope[name]):
            raise UnreadableEnvelope(f"a forward task's {name} is not text")
    if any(value != IMPRESSION for value in envelope["kind"]):
        raise UnreadableEnvelope(f"a forward task's kind is not {IMPRESSION!r}")
    return list(envelope.rows())


def _forward_tasks(app: faust.App, topics: EventTopics, schedule: Schedule) -> Any:
    kind = kinds.FORWARD_TASKS

    async def schedule_envelopes(stream: Any) -> None:
        async for events in stream.take_events(BATCH_SIZE, within=BATCH_WINDOW_SECONDS):
            groups = []
            set_aside_acks = []
            for event in events:
                try:
                    tasks = envelope_tasks(event.value)
                except UnreadableEnvelope as exc:
                    set_aside_acks.append(await set_aside(topics, event, str(exc), log))
                    continue
                if tasks:
                    groups.append(TaskGroup(tasks, _source_mark(event)))
            # The batch is not acknowledged until its tasks are scheduled and every
            # record of it set aside is on the broker: waiting keeps it.
            if groups:
                await schedule(groups, "forward tasks")
            scheduled = sum(len(group.tasks) for group in groups)
            metrics.took_in(kind.topic, scheduled)
            metrics.sent_out(kind.topic, scheduled)
            for ack in set_aside_acks:
                await ack

    return app.agent(topics[kind], name=kind.topic)(schedule_envelopes)


def _source_mark(event: Any) -> SourceMark | None:
    """The impressions envelope an envelope of forward tasks was made from (in its
    headers; its key is that envelope's), by which a replay of it is recognised; None
    for one written before sources were, deduplicated task by task instead."""
    source = source_of(event.headers)
    accepted_ms = envelope_time(event)
    if source is None or accepted_ms is None:
        return None
    return SourceMark(source, accepted_ms)


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
                await schedule([TaskGroup(tasks)], "affiliate postbacks")
            metrics.took_in(kind.topic, len(tasks))
            metrics.sent_out(kind.topic, len(tasks))

    return app.agent(topics[kind], name=kind.topic)(schedule_batches)
