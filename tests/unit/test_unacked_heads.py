"""A committed offset never acked behind later acks is judged lost only after the
grace, once, and the wait starts again (app/compat/unacked_heads.py). Which offset
is such a head is the consumer's to say (tests/unit/test_faust_transport.py)."""

from __future__ import annotations

from app.compat.unacked_heads import UnackedHeads


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_head_unacked_behind_a_later_ack_is_lost_after_the_grace_and_once() -> None:
    clock = Clock()
    heads = UnackedHeads(grace_seconds=60, clock=clock)
    assert not heads.lost("p0", 88)  # first seen
    clock.now += 59
    assert not heads.lost("p0", 88)  # a batch after a seek may take this long
    clock.now += 1
    assert heads.lost("p0", 88)
    # Sought back: the wait starts again.
    assert not heads.lost("p0", 88)
    clock.now += 60
    assert heads.lost("p0", 88)


def test_a_head_acked_or_a_commit_moving_on_starts_the_wait_again() -> None:
    clock = Clock()
    heads = UnackedHeads(grace_seconds=60, clock=clock)
    assert not heads.lost("p0", 88)
    clock.now += 30
    assert not heads.lost("p0", None)  # the head is acked: nothing is missing
    clock.now += 40
    assert not heads.lost("p0", 88)  # behind a later ack again: a new wait
    clock.now += 30
    assert not heads.lost("p0", 91)  # committed moved on: a new head
    clock.now += 59
    assert not heads.lost("p0", 91)
    clock.now += 1
    assert heads.lost("p0", 91)


def test_no_head_is_not_a_loss_and_revoked_ones_are_forgotten() -> None:
    clock = Clock()
    heads = UnackedHeads(grace_seconds=60, clock=clock)
    assert not heads.lost("p0", None)
    assert not heads.lost("p1", 10)
    heads.forget(["p1"])
    clock.now += 60
    assert not heads.lost("p1", 10)  # its wait started again
