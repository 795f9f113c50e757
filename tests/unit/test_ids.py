"""aimp_id / clickid generation: time-ordered, unique, unguessable, checked by the key."""

from __future__ import annotations

from datetime import UTC, datetime
from itertools import pairwise

import pytest

from app.ids import (
    ENVELOPE_SLOTS,
    EPOCH_MS,
    MAX_PARTITIONS,
    IdGenerator,
    IdSeal,
    id_ms,
    id_time,
    is_valid_id,
)
from tests.ids import TEST_SEAL


def test_ids_are_24_lowercase_hex_and_carry_their_time() -> None:
    """An ID is 24 lowercase hex characters whose first 11 encode the issue time in ms."""
    issued = IdGenerator(TEST_SEAL).new_id(now_ms=1_795_000_000_123)
    assert is_valid_id(issued)
    assert id_time(issued) == datetime.fromtimestamp(1_795_000_000.123, tz=UTC)
    assert int(issued[:11], 16) == 1_795_000_000_123 - EPOCH_MS
    for unlike in (issued + "\n", issued.upper(), issued[:-1], issued + "0", " " + issued):
        assert not is_valid_id(unlike), repr(unlike)


def test_ids_sort_by_time_and_never_repeat() -> None:
    """Many IDs in one millisecond never repeat, and a later millisecond sorts after
    (1,000 IDs wrap the 512-value counter once or twice, taking the last ones into the
    next milliseconds)."""
    gen = IdGenerator(TEST_SEAL)
    same_ms = [gen.new_id(now_ms=1_700_000_000_000) for _ in range(1000)]
    assert len(set(same_ms)) == len(same_ms)
    later = gen.new_id(now_ms=1_700_000_000_003)
    assert all(later > earlier for earlier in same_ms)


def test_a_clock_stepping_back_does_not_break_the_order() -> None:
    """If the wall clock goes back, IDs keep the last time instead of sorting backwards."""
    gen = IdGenerator(TEST_SEAL)
    later = gen.new_id(now_ms=1_700_000_005_000)
    after_step_back = gen.new_id(now_ms=1_700_000_004_000)
    assert id_ms(after_step_back) == id_ms(later)


def test_counter_wrap_within_a_millisecond_moves_to_the_next() -> None:
    """Over 512 IDs in one millisecond from one process: the counter wraps and the IDs
    move to the next millisecond rather than repeating."""
    gen = IdGenerator(TEST_SEAL)
    gen._counter = ENVELOPE_SLOTS - 1  # the next wraps: 512 IDs per millisecond from then on
    ids = [gen.new_id(now_ms=1_700_000_007_000) for _ in range(1500)]
    assert len(set(ids)) == 1500
    assert {id_ms(i) for i in ids} == {1_700_000_007_000 + n for n in range(3)}


def test_two_generators_do_not_collide() -> None:
    """Two processes (generators) issuing in the same millisecond give distinct IDs,
    and the key tells which process issued each."""
    a, b = IdGenerator(TEST_SEAL), IdGenerator(TEST_SEAL)
    from_a = {a.new_id(now_ms=1_700_000_009_000) for _ in range(1000)}
    from_b = {b.new_id(now_ms=1_700_000_009_000) for _ in range(1000)}
    assert len(from_a | from_b) == 2000
    assert len({TEST_SEAL.origin(i) for i in from_a}) == 1
    assert {TEST_SEAL.origin(i) for i in from_a} != {TEST_SEAL.origin(i) for i in from_b}


def test_the_key_tells_issued_ids_from_guesses() -> None:
    """Every ID issued passes the keyed check; guesses at its neighbours do not, but
    for one in 8,192 (13 check bits), which the tables then do not know: of 12,000
    guesses about 1.5 pass, and more than 10 would mean the check is broken."""
    gen = IdGenerator(TEST_SEAL)
    issued = [gen.new_id(now_ms=1_700_000_010_000 + n // 50) for n in range(2000)]
    assert all(TEST_SEAL.issued(i) for i in issued)
    guesses = set()
    for value in issued:
        sealed = int(value[11:], 16)
        for delta in (1, -1, 2, 1 << 20, 1 << 30):
            guesses.add(f"{value[:11]}{(sealed + delta) % (1 << 52):013x}")
        later = int(value[:11], 16) + 1
        guesses.add(f"{later:011x}{value[11:]}")  # the same bits a millisecond later
    guesses -= set(issued)
    assert len(guesses) > 11_000
    assert len([g for g in guesses if TEST_SEAL.issued(g)]) <= 10
    # Under another network's key, 2,000 IDs pass its check about 0.24 times.
    other = IdSeal(b"another network's key, not ours")
    assert len([i for i in issued if other.issued(i)]) <= 3


def test_neighbours_look_unrelated() -> None:
    """Without the key, consecutive IDs of one process share nothing but their time:
    on average half of the 52 sealed bits differ, as between random numbers."""
    gen = IdGenerator(TEST_SEAL)
    ids = [gen.new_id(now_ms=1_700_000_020_000) for _ in range(2000)]
    flips = [bin(int(a[11:], 16) ^ int(b[11:], 16)).count("1") for a, b in pairwise(ids)]
    assert 24 < sum(flips) / len(flips) < 28
    assert min(flips) > 5


def test_seal_and_unseal_are_inverse() -> None:
    for plain in (0, 1, (1 << 52) - 1, 123_456_789_012):
        assert TEST_SEAL.unseal(42, TEST_SEAL.seal(42, plain)) == plain


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        IdSeal(b"short")


@pytest.mark.parametrize("bad", ["", "ABCDEF0123456789abcdef01", "0123", "g" * 24, "0" * 25])
def test_malformed_ids_are_refused(bad: str) -> None:
    """Anything but 24 lowercase hex characters is not an ID."""
    assert not is_valid_id(bad)
    assert not TEST_SEAL.issued(bad)
    with pytest.raises(ValueError, match="24-character"):
        id_time(bad)


def test_an_id_says_its_partition() -> None:
    """The partition an ID was made for comes back out of it with the key, and only
    with the key."""
    gen = IdGenerator(TEST_SEAL)
    for partition in (0, 1, 7, MAX_PARTITIONS - 1):
        value = gen.new_id(partition=partition)
        assert TEST_SEAL.partition(value) == partition
    other = IdSeal(b"another network's key, not ours")
    assert sum(other.partition(gen.new_id()) is not None for _ in range(100)) <= 2
    with pytest.raises(ValueError, match="partitions 0-255, not 256"):
        gen.new_id(partition=MAX_PARTITIONS)


def test_an_envelope_names_each_impression_by_its_slot() -> None:
    """Every ID of an envelope unseals to the envelope's key, its partition and its
    own slot; they share the envelope's millisecond and never repeat."""
    gen = IdGenerator(TEST_SEAL)
    envelope = gen.open_envelope(3, now_ms=1_700_000_030_000)
    ids = [envelope.id(slot) for slot in range(ENVELOPE_SLOTS)]
    assert len(set(ids)) == ENVELOPE_SLOTS
    assert {id_ms(i) for i in ids} == {1_700_000_030_000}
    for slot, value in enumerate(ids):
        parts = TEST_SEAL.parts(value)
        assert parts is not None
        assert (parts.envelope_key, parts.partition, parts.slot) == (envelope.key, 3, slot)
    with pytest.raises(ValueError, match="slots 0-511, not 512"):
        envelope.id(ENVELOPE_SLOTS)


def test_envelopes_of_one_millisecond_differ_and_the_fourth_moves_on() -> None:
    """Three envelopes per partition and millisecond; a fourth takes the next
    millisecond. Another partition's envelopes, and IDs made alone, never meet them."""
    gen = IdGenerator(TEST_SEAL)
    at = 1_700_000_040_000
    first = [gen.open_envelope(0, now_ms=at) for _ in range(4)]
    assert len({e.key for e in first}) == 4
    assert [e.tick + EPOCH_MS for e in first] == [at, at, at, at + 1]
    other = gen.open_envelope(1, now_ms=at + 1)
    alone = [gen.new_id(now_ms=at + 1, partition=0) for _ in range(ENVELOPE_SLOTS - 1)]
    from_envelopes = {e.id(s) for e in [*first, other] for s in range(ENVELOPE_SLOTS)}
    assert not from_envelopes & set(alone)
