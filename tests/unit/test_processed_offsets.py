"""How far the agents have processed each partition, and what a postback that does
not find its click or impression may conclude from it (agents/table_progress.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agents.table_progress import CLOCK_SKEW_MS, TableInput
from app.compat.processed_offsets import ProcessedOffsets
from app.events import kinds
from app.ids import IdGenerator
from tests.ids import TEST_SEAL

TP = ("impressions", 0)
RECEIVED_MS = 1_800_000_000_000  # when the edge accepted the postback


def test_processing_moves_the_mark_from_where_the_consumer_resumed() -> None:
    offsets = ProcessedOffsets()
    offsets.positioned({TP: 120, ("impressions", 1): None})
    assert offsets.next_offset(TP) == 120
    assert offsets.next_offset(("impressions", 1)) == 0  # never committed: the log's start
    for offset in range(120, 125):
        offsets.processed(TP, offset)
    assert offsets.next_offset(TP) == 125


def test_a_record_read_again_after_a_seek_back_does_not_move_the_mark_back() -> None:
    offsets = ProcessedOffsets()
    offsets.positioned({TP: 0})
    offsets.processed(TP, 9)
    offsets.processed(TP, 3)
    assert offsets.next_offset(TP) == 10


def test_partitions_not_positioned_or_revoked_are_not_tracked() -> None:
    offsets = ProcessedOffsets()
    offsets.processed(TP, 5)  # fetched before its partition was revoked
    assert offsets.next_offset(TP) is None
    assert not offsets.caught_up(TP, (0, RECEIVED_MS + 1), RECEIVED_MS)
    offsets.positioned({TP: 7})
    offsets.forget([TP])
    assert offsets.next_offset(TP) is None


def test_caught_up_takes_a_fetch_answered_later_that_found_nothing_unprocessed() -> None:
    offsets = ProcessedOffsets()
    offsets.positioned({TP: 40})
    assert offsets.caught_up(TP, (40, RECEIVED_MS + 1), RECEIVED_MS)
    assert not offsets.caught_up(TP, (40, RECEIVED_MS), RECEIVED_MS)  # answered too early
    assert not offsets.caught_up(TP, (41, RECEIVED_MS + 1), RECEIVED_MS)  # one to go
    assert not offsets.caught_up(TP, None, RECEIVED_MS)  # never fetched


class FakeConsumer:
    """The worker's consumer as agents.table_progress uses it, on the real bookkeeping."""

    def __init__(self) -> None:
        self.offsets = ProcessedOffsets()
        self.offsets.positioned({TP: 0})
        self.fetched: tuple[int, int] | None = None

    def processed(self, tp: Any, offset: int) -> None:
        self.offsets.processed((tp.topic, tp.partition), offset)

    def processed_up_to_end(self, tp: Any, answered_after_ms: int) -> bool:
        return self.offsets.caught_up((tp.topic, tp.partition), self.fetched, answered_after_ms)


@pytest.fixture
def consumer() -> FakeConsumer:
    return FakeConsumer()


def _impressions_input(consumer: FakeConsumer) -> TableInput:
    """The impressions table's input, in a worker whose consumer is ``consumer``."""
    return TableInput(SimpleNamespace(consumer=consumer), kinds.IMPRESSIONS)  # type: ignore[arg-type]


def _written(source: TableInput, first_offset: int, *issued_ms: int) -> None:
    """Envelopes opened at ``issued_ms`` are in the table (their keys say when)."""
    ids = IdGenerator(TEST_SEAL)
    source.processed(
        [
            SimpleNamespace(
                message=SimpleNamespace(
                    tp=SimpleNamespace(topic="impressions", partition=0),
                    partition=0,
                    offset=first_offset + n,
                ),
                key=ids.open_envelope(0, now_ms=ms).key,
                value=b"",
            )
            for n, ms in enumerate(issued_ms)
        ]
    )


def test_a_postback_waits_while_the_impressions_agent_has_not_reached_its_time(
    consumer: FakeConsumer,
) -> None:
    """A restarted worker reads the small postbacks topic ahead of the impressions:
    neither an older impression written nor a fetch that found more than was
    written shows that the table holds the impression a postback names."""
    source = _impressions_input(consumer)
    _written(source, 0, RECEIVED_MS - 20_000)
    assert not source.holds_everything_before(0, RECEIVED_MS)
    consumer.fetched = (40, RECEIVED_MS + 5_000)  # 39 more to write
    assert not source.holds_everything_before(0, RECEIVED_MS)


def test_an_impression_accepted_after_the_postback_shows_the_table_current(
    consumer: FakeConsumer,
) -> None:
    source = _impressions_input(consumer)
    _written(source, 0, RECEIVED_MS + CLOCK_SKEW_MS - 1)
    assert not source.holds_everything_before(0, RECEIVED_MS)
    _written(source, 1, RECEIVED_MS + CLOCK_SKEW_MS)
    assert source.holds_everything_before(0, RECEIVED_MS)
    assert not source.holds_everything_before(1, RECEIVED_MS)  # another partition


def test_a_fetch_answered_after_the_postback_with_nothing_more_shows_the_table_current(
    consumer: FakeConsumer,
) -> None:
    """A quiet partition: no later impression comes to show it, a fetch does."""
    source = _impressions_input(consumer)
    _written(source, 0, RECEIVED_MS - 60_000, RECEIVED_MS - 59_000, RECEIVED_MS - 58_000)
    consumer.fetched = (3, RECEIVED_MS + CLOCK_SKEW_MS)  # answered too early to tell
    assert not source.holds_everything_before(0, RECEIVED_MS)
    consumer.fetched = (3, RECEIVED_MS + CLOCK_SKEW_MS + 50)
    assert source.holds_everything_before(0, RECEIVED_MS)
