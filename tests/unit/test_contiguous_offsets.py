"""The stream-side guard against records dropped between fetch and stream."""

from __future__ import annotations

from app.compat.contiguous_offsets import ContiguousOffsets

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


def test_a_dropped_tail_is_found_by_the_high_watermark_after_the_stall_time() -> None:
    """The last record of an idle partition dropped on the way: no later record shows
    it, so the end the broker reported, unreached for 2 s, does."""
    clock = Clock()
    offsets = ContiguousOffsets(clock=clock, stall_seconds=2.0)
    offsets.positioned({TP: 2})
    assert all(offsets.admit(TP, o) for o in (2, 3, 4))
    assert not offsets.stalled(TP, 6)  # offset 5 is awaited from now
    clock.now += 1.9
    assert not offsets.stalled(TP, 6)
    clock.now += 0.2
    assert offsets.stalled(TP, 6)
    # Sought back: the wait starts again, and ends when the record comes.
    offsets.positioned({TP: 5})
    assert not offsets.stalled(TP, 6)
    assert offsets.admit(TP, 5)
    clock.now += 10
    assert not offsets.stalled(TP, 6)


def test_progress_or_a_reached_end_is_no_stall() -> None:
    """A partition whose stream moves on, or that holds nothing beyond it, is not stalled."""
    clock = Clock()
    offsets = ContiguousOffsets(clock=clock, stall_seconds=2.0)
    offsets.positioned({TP: 0, OTHER: 7})
    assert not offsets.stalled(TP, 100)
    for offset in range(0, 60):
        clock.now += 0.1
        assert offsets.admit(TP, offset)
        assert not offsets.stalled(TP, 100)
    clock.now += 5
    assert not offsets.stalled(OTHER, 7)
    assert not offsets.stalled(("unknown", 0), 50)
