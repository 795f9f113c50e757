"""aimp_id / clickid generation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.ids import IdGenerator, id_time, is_valid_id


def test_ids_are_24_lowercase_hex_and_carry_their_time() -> None:
    """An ID is 24 lowercase hex characters whose first 12 encode the issue time in ms."""
    issued = IdGenerator().new_id(now_ms=1_795_000_000_123)
    assert is_valid_id(issued)
    assert id_time(issued) == datetime.fromtimestamp(1_795_000_000.123, tz=UTC)


def test_ids_of_one_process_strictly_increase() -> None:
    """Many IDs in the same millisecond still sort in issue order and never repeat."""
    gen = IdGenerator()
    ids = [gen.new_id(now_ms=1_000) for _ in range(10_000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


def test_a_clock_stepping_back_does_not_break_the_order() -> None:
    """If the wall clock goes back, IDs keep the last time instead of sorting backwards."""
    gen = IdGenerator()
    later = gen.new_id(now_ms=5_000)
    after_step_back = gen.new_id(now_ms=4_000)
    assert after_step_back > later


def test_counter_wrap_within_a_millisecond_moves_to_the_next() -> None:
    """16.7M IDs in one millisecond is impossible in practice; if the counter wraps,
    the ID moves to the next millisecond rather than repeating."""
    gen = IdGenerator()
    gen._counter = (1 << 24) - 2
    first = gen.new_id(now_ms=7_000)
    wrapped = gen.new_id(now_ms=7_000)
    assert wrapped > first
    assert int(wrapped[:12], 16) == 7_001


def test_two_generators_do_not_collide() -> None:
    """Two processes (generators) issuing in the same millisecond give distinct IDs."""
    a, b = IdGenerator(), IdGenerator()
    ids = {a.new_id(now_ms=9_000) for _ in range(1000)} | {
        b.new_id(now_ms=9_000) for _ in range(1000)
    }
    assert len(ids) == 2000


@pytest.mark.parametrize("bad", ["", "ABCDEF0123456789abcdef01", "0123", "g" * 24, "0" * 25])
def test_malformed_ids_are_refused(bad: str) -> None:
    """Anything but 24 lowercase hex characters is not an ID."""
    assert not is_valid_id(bad)
    with pytest.raises(ValueError, match="24-character"):
        id_time(bad)
