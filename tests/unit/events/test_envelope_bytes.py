"""Envelopes of events of unbounded size stay within a record's size."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from app.events.envelopes import ENVELOPE_BYTES, within_bytes


def _encode(events: Sequence[str]) -> bytes:
    return b"\x01" + orjson.dumps([list(events)])


def test_events_that_fit_are_one_envelope() -> None:
    events = [f"e{n}" for n in range(500)]
    ((held, value),) = within_bytes(_encode, events)
    assert list(held) == events
    assert value == _encode(events)


def test_too_many_bytes_are_split_in_order_each_within_the_limit() -> None:
    events = ["x" * 1000 for _ in range(10)] + [f"y{n}" * 300 for n in range(7)]
    split = within_bytes(_encode, events, limit=3000)
    assert len(split) > 1
    assert [e for held, _ in split for e in held] == events
    for held, value in split:
        assert len(value) <= 3000
        assert value == _encode(held)


def test_an_event_larger_than_the_limit_goes_alone() -> None:
    events = ["a", "b" * 5000, "c"]
    split = within_bytes(_encode, events, limit=100)
    assert [list(held) for held, _ in split] == [["a"], ["b" * 5000], ["c"]]


def test_a_full_envelope_leaves_room_under_kafkas_default_record_size() -> None:
    """Split envelopes stay under the limit, and an envelope only exceeds it with one
    event, itself at most the edge's 64 KiB body and a little encoding."""
    assert max(ENVELOPE_BYTES, 2 * 64 * 1024) < 1_000_000
