"""The stream-side guard against records dropped between fetch and stream."""

from __future__ import annotations

from app.contiguous_offsets import ContiguousOffsets

TP = ("impressions", 0)
OTHER = ("impressions", 1)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_contiguous_records_are_handed_on() -> None:
    offsets = ContiguousOffsets()
    assert [offsets.admit(TP, o) for o in range(5)] == [True] * 5
    assert offsets.expected(TP) == 5


def test_a_record_beyond_the_expected_offset_is_held_back_until_the_gap_is_read() -> None:
    offsets = ContiguousOffsets()
    offsets.positioned({TP: 1329})
    assert offsets.admit(TP, 1329)
    # 1330..2351 were dropped on the way: 2352 must not pass.
    assert not offsets.admit(TP, 2352)
    assert not offsets.admit(TP, 2353)
    assert offsets.expected(TP) == 1330
    # Sought back, the dropped records come again and the stream goes on.
    assert all(offsets.admit(TP, o) for o in range(1330, 2360))
    assert offsets.expected(TP) == 2360


def test_records_read_again_after_a_seek_back_pass() -> None:
    offsets = ContiguousOffsets()
    assert all(offsets.admit(TP, o) for o in range(10))
    offsets.positioned({TP: 3})
    assert offsets.admit(TP, 3)
    # Earlier than expected is a re-read (e.g. a refetch racing a commit): fine.
    assert offsets.admit(TP, 1)
    assert offsets.expected(TP) == 2


def test_unknown_positions_accept_anything_once() -> None:
    offsets = ContiguousOffsets()
    assert offsets.admit(TP, 500)  # first record after assignment
    offsets.positioned({TP: None})  # nothing committed: the reset policy decides
    assert offsets.admit(TP, 900)
    assert not offsets.admit(TP, 950)


def test_partitions_are_independent_and_revoked_ones_forgotten() -> None:
    offsets = ContiguousOffsets()
    offsets.positioned({TP: 10, OTHER: 20})
    assert not offsets.admit(TP, 12)
    assert offsets.admit(OTHER, 20)
    offsets.forget([TP])
    assert offsets.expected(TP) is None
    assert offsets.admit(TP, 12)
    assert offsets.expected(OTHER) == 21


def test_a_gap_that_never_fills_is_passed_after_the_grace() -> None:
    clock = Clock()
    offsets = ContiguousOffsets(grace_seconds=30, clock=clock)
    offsets.positioned({TP: 7})
    assert not offsets.admit(TP, 9)
    clock.now += 29
    assert not offsets.admit(TP, 9)
    clock.now += 2
    assert offsets.admit(TP, 9)
    assert offsets.passed == 1
    assert offsets.expected(TP) == 10
    # A later gap has a grace of its own.
    assert not offsets.admit(TP, 12)
