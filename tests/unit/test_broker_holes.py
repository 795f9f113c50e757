"""Fetched records stop before a batch the broker has numbered but not stored yet."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from aiokafka.record.default_records import DefaultRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from app import broker_holes
from app.broker_holes import ContiguousPartitionRecords, HoleCounters

TP = TopicPartition("impressions", 0)


def _batch(base_offset: int, count: int) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for delta in range(count):
        builder.append(
            delta, timestamp=0, key=None, value=b"v%d" % (base_offset + delta), headers=[]
        )
    raw = bytearray(builder.build())
    raw[0:8] = struct.pack(">q", base_offset)  # the broker sets the base offset
    return bytes(raw)


def _offsets(fetch_offset: int, *batches: tuple[int, int]) -> tuple[list[int], int]:
    records = MemoryRecords(b"".join(_batch(base, count) for base, count in batches))
    fetched = ContiguousPartitionRecords(TP, records, [], fetch_offset, None, None, True, 0)
    return [record.offset for record in fetched], fetched.next_fetch_offset


@pytest.fixture(autouse=True)
def fresh_counters(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(HoleCounters, "waited", 0)
    monkeypatch.setattr(HoleCounters, "passed", 0)
    monkeypatch.setattr(HoleCounters, "_first_met", {})
    yield


def test_contiguous_batches_are_read_whole() -> None:
    assert _offsets(10, (10, 3), (13, 2)) == ([10, 11, 12, 13, 14], 15)


def test_a_fetch_from_inside_a_batch_skips_only_what_was_read() -> None:
    assert _offsets(11, (10, 3), (13, 2)) == ([11, 12, 13, 14], 15)


def test_records_stop_before_a_hole_and_the_position_stays_at_it() -> None:
    assert _offsets(10, (10, 3), (16, 2)) == ([10, 11, 12], 13)
    assert HoleCounters.waited == 1


def test_a_hole_at_the_fetch_offset_yields_nothing() -> None:
    assert _offsets(10, (13, 2)) == ([], 10)


def test_the_refetch_after_the_hole_filled_reads_on() -> None:
    _offsets(10, (10, 3), (16, 2))
    assert _offsets(13, (13, 3), (16, 2)) == ([13, 14, 15, 16, 17], 18)
    assert HoleCounters.passed == 0


def test_a_hole_that_never_fills_is_passed_after_the_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = [1000.0]
    monkeypatch.setattr(broker_holes.time, "monotonic", lambda: clock[0])
    assert _offsets(13, (16, 2)) == ([], 13)
    clock[0] += broker_holes.HOLE_GRACE_SECONDS - 0.1
    assert _offsets(13, (16, 2)) == ([], 13)
    clock[0] += 0.2
    assert _offsets(13, (16, 2)) == ([16, 17], 18)
    assert (HoleCounters.waited, HoleCounters.passed) == (1, 1)
