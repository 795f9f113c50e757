"""The forwarder's scheduling agents alone: each envelope of forward tasks is one
group of one schedule call per batch, named by the record it was made from; a
record that is no envelope, or holds a malformed task, is set aside whole and the
envelopes after it go on; affiliate postbacks are scheduled in batches, a malformed
one left out."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest

from agents.forwarder import schedule_deliveries
from app.events import dead_letters, kinds
from app.events.provenance import Source, source_headers
from app.events.records import AffiliatePostbackTask
from app.forwarding.schedule import SourceMark, TaskGroup
from app.ids import IdGenerator, envelope_key_ms
from tests.ids import TEST_SEAL
from tests.unit.agents.conftest import Worker, settled

_FORMAT = kinds.FORWARD_TASKS.enveloped.current


class Scheduled:
    """What the agents asked the schedule for: each call's groups and what."""

    def __init__(self) -> None:
        self.calls: list[tuple[list[list[Any]], str]] = []
        self.sources: list[SourceMark | None] = []

    async def __call__(self, groups: Sequence[TaskGroup], what: str) -> None:
        self.calls.append(([list(group.tasks) for group in groups], what))
        self.sources += [group.source for group in groups]

    def groups(self) -> list[list[Any]]:
        return [group for groups, _ in self.calls for group in groups]


def _envelope(count: int, **overrides: Any) -> tuple[str, list[dict[str, Any]], bytes]:
    """An envelope of ``count`` forward tasks as the worker writes one: its key, its
    tasks and its value."""
    ids = IdGenerator(TEST_SEAL).open_envelope(0)
    tasks = []
    for slot in range(count):
        aimp_id = ids.id(slot)
        task = {
            "aimp_id": aimp_id,
            "offer_id": 9500,
            "pid": 3,
            "advertiser_id": 9,
            "destination": "https://adv.example/imp?a={aimp_id}",
            "url": f"https://adv.example/imp?a={aimp_id}",
            "kind": "impression",
        }
        tasks.append(task | overrides)
    return ids.key, tasks, _FORMAT.encode_rows(tasks)


async def test_each_envelope_is_one_group_of_its_tasks(worker: Worker) -> None:
    """Two envelopes of one batch are scheduled by one call, each envelope a group
    (one Redis script) holding its tasks as they were written."""
    scheduled = Scheduled()
    forward_tasks, _ = schedule_deliveries(worker.app, worker.topics, scheduled)
    first_key, first, first_value = _envelope(3)
    second_key, second, second_value = _envelope(2)
    async with forward_tasks.test_context() as tested:
        await tested.put(first_value, key=first_key)
        await tested.put(second_value, key=second_key)
        await settled(lambda: len(scheduled.groups()) == 2)

    assert scheduled.groups() == [first, second]
    assert {what for _, what in scheduled.calls} == {"forward tasks"}
    assert worker.topics.sent[kinds.UNREADABLE.topic] == []


async def test_an_envelope_is_named_by_the_impressions_record_it_was_made_from(
    worker: Worker,
) -> None:
    """The schedule recognises a replayed envelope by its source: the impressions
    partition and offset in its headers, with its impressions' time (its key's). One
    written before sources were is scheduled with none (deduplicated task by task)."""
    scheduled = Scheduled()
    forward_tasks, _ = schedule_deliveries(worker.app, worker.topics, scheduled)
    named_key, named, named_value = _envelope(2)
    old_key, old, old_value = _envelope(1)
    async with forward_tasks.test_context() as tested:
        await tested.put(
            named_value, key=named_key, headers=source_headers(kinds.IMPRESSIONS.topic, 2, 41)
        )
        await tested.put(old_value, key=old_key)
        await settled(lambda: len(scheduled.groups()) == 2)

    assert scheduled.groups() == [named, old]
    assert scheduled.sources == [
        SourceMark(Source(kinds.IMPRESSIONS.topic, 2, 41), envelope_key_ms(named_key)),
        None,
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x7f[[]]", "forward tasks envelope of format 127, which this imptrack does not know"),
        (b"\x01[[1,2", "forward tasks envelope v1: "),
        (b"\x01[[1],[2]]", "forward tasks envelope v1: not 7 columns of one length"),
        (b"", "an empty record is no forward tasks envelope"),
        (_envelope(2, aimp_id="not-an-id")[2], "a forward task's aimp_id is not an ID"),
        (_envelope(1, url=None)[2], "a forward task's url is not text"),
        (_envelope(1, kind="affiliate_postback")[2], "a forward task's kind is not 'impression'"),
    ],
    ids=[
        "unknown-format",
        "broken-json",
        "wrong-columns",
        "empty",
        "malformed-aimp-id",
        "no-url",
        "wrong-kind",
    ],
)
async def test_an_unreadable_record_is_set_aside_and_the_next_envelope_goes_on(
    worker: Worker, value: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The record goes, key and value as they came, to unreadable-records with where
    it was and why, in one log line; none of its tasks is scheduled; the envelope
    after it is."""
    scheduled = Scheduled()
    forward_tasks, _ = schedule_deliveries(worker.app, worker.topics, scheduled)
    key, tasks, good = _envelope(2)
    with caplog.at_level(logging.ERROR, logger="imptrack.forwarder"):
        async with forward_tasks.test_context() as tested:
            await tested.put(value, key="0123456789abcdef01234")
            await tested.put(good, key=key)
            await settled(lambda: len(scheduled.groups()) == 1)

    assert scheduled.groups() == [tasks]
    assert worker.topics.sent[kinds.UNREADABLE.topic] == [("0123456789abcdef01234", value)]
    (headers,) = worker.topics.headers[kinds.UNREADABLE.topic]
    named = {name: text.decode() for name, text in headers}
    # The test context's channel is partition 0 of "<internal>"; on Kafka it is
    # forward-tasks (tests/integration/test_unreadable_forward_tasks.py).
    assert (named[dead_letters.SOURCE_PARTITION], named[dead_letters.SOURCE_OFFSET]) == ("0", "0")
    assert named[dead_letters.REASON].startswith(reason), named[dead_letters.REASON]
    (line,) = [r.getMessage() for r in caplog.records if "unreadable record" in r.getMessage()]
    assert f"sent to {kinds.UNREADABLE.topic}: {named[dead_letters.REASON]}" in line


async def test_affiliate_postbacks_are_scheduled_and_a_malformed_one_is_skipped(
    worker: Worker,
) -> None:
    scheduled = Scheduled()
    _, affiliate_postbacks = schedule_deliveries(worker.app, worker.topics, scheduled)
    good = AffiliatePostbackTask(
        conversion_id=IdGenerator(TEST_SEAL).new_id(),
        revision=1,
        postback_id=IdGenerator(TEST_SEAL).new_id(),
        offer_id=9500,
        pid=3,
        advertiser_id=9,
        conversion_status=1,
        payout="1.00",
        currency="USD",
        goal="1",
        destination="https://aff.example/pb?c={clickid}",
        url="https://aff.example/pb?c=x",
    )
    malformed = good.derive(conversion_id="not-an-id")
    async with affiliate_postbacks.test_context() as tested:
        await tested.put(good, key=good.conversion_id)
        await tested.put(malformed, key="not-an-id")
        await settled(lambda: len(scheduled.groups()) >= 1)

    assert scheduled.calls == [([[good]], "affiliate postbacks")]
