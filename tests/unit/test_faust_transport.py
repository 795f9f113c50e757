"""The Faust consumer's workarounds that are pure decisions, tested alone."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import Message

from app.compat import install, installed
from app.compat.faust_consumer import (
    CurrentGenerationConsumer,
    IdempotentProducer,
    KafkaTransport,
    WorkerConsumerThread,
)
from app.compat.unacked_heads import UnackedHeads
from app.events import kinds
from app.exceptions import LibraryMismatch
from app.settings import Settings

Install = Callable[..., None]


@pytest.fixture(autouse=True)
def install_with(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Install:
    """``install()`` in a process of its own: the settings given by one test are not
    those installed by another (or by importing the Faust app)."""

    def installing(**env: str) -> None:
        monkeypatch.setattr(installed, "_kept", None)
        install(Settings.from_env({"IMPTRACK_HOME": str(tmp_path), **env}))

    installing()
    return installing


def test_every_faust_producer_is_idempotent_with_acks_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only under exactly_once: a retried send is never written twice."""
    monkeypatch.setattr(faust_aiokafka.Producer, "_settings_extra", lambda self: {})
    producer = object.__new__(IdempotentProducer)
    assert producer._settings_extra() == {"acks": "all", "enable_idempotence": True}


class Fetching:
    """aiokafka's consumer as Faust makes it, as far as the patch is concerned."""

    _fetch_max_wait_ms = 500
    _fetch_min_bytes = 1
    _isolation_level = "read_uncommitted"  # Faust's outside exactly_once


def _worker_consumer(monkeypatch: pytest.MonkeyPatch, made: Callable[[], Any] = Fetching) -> Any:
    monkeypatch.setattr(
        faust_aiokafka.AIOKafkaConsumerThread,
        "_create_worker_consumer",
        lambda self, transport: made(),
    )
    return object.__new__(WorkerConsumerThread)._create_worker_consumer(None)


def test_a_worker_fetch_waits_for_its_minimum_or_the_fetch_wait_and_reads_committed_only(
    monkeypatch: pytest.MonkeyPatch, install_with: Install
) -> None:
    """A fetch waits for WORKER_FETCH_MIN_BYTES (by default the first record, for the
    postback verdict's latency) and never longer than WORKER_FETCH_WAIT_MS, as given
    to install()."""
    install_with(WORKER_FETCH_WAIT_MS="40", WORKER_FETCH_MIN_BYTES="32768")
    consumer = _worker_consumer(monkeypatch)
    assert (consumer._fetch_max_wait_ms, consumer._fetch_min_bytes) == (40, 32768)
    # The forwarder never sees the forward tasks of an aborted transaction.
    assert consumer._isolation_level == "read_committed"
    install_with()
    consumer = _worker_consumer(monkeypatch)
    assert consumer._fetch_min_bytes == 1  # answered at the first record: verdicts first


def test_a_consumer_without_the_private_fetch_fields_is_refused_naming_the_version(
    monkeypatch: pytest.MonkeyPatch, install_with: Install
) -> None:
    """An aiokafka that no longer has the field would ignore the value without a word."""

    class Renamed:
        _fetch_max_wait_ms = 500

    with pytest.raises(LibraryMismatch, match=r"_fetch_min_bytes.*written for aiokafka 0\.14\.0"):
        _worker_consumer(monkeypatch, Renamed)


def test_the_consumer_patch_is_refused_before_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not run on defaults: the process forgot to give its settings."""
    monkeypatch.setattr(installed, "_kept", None)
    with pytest.raises(RuntimeError, match=r"install\(settings\) was not called"):
        _worker_consumer(monkeypatch)
    with pytest.raises(RuntimeError, match=r"install\(settings\) was not called"):
        _faust_consumer(CurrentGenerationConsumer)._contiguous_topic(kinds.IMPRESSIONS.topic)


def test_under_exactly_once_only_the_edge_topics_are_held_to_contiguous_offsets(
    install_with: Install,
) -> None:
    """The worker's transactions give their commit markers offsets of their own: the
    guard would refetch forever on the forward tasks it wrote."""
    acking = (kinds.IMPRESSIONS.topic, kinds.FORWARD_TASKS.topic)
    consumer = _faust_consumer(CurrentGenerationConsumer, acking)
    assert consumer._contiguous_topic(kinds.FORWARD_TASKS.topic)
    install_with(WORKER_PROCESSING_GUARANTEE="exactly_once")
    assert consumer._contiguous_topic(kinds.IMPRESSIONS.topic)
    assert not consumer._contiguous_topic(kinds.FORWARD_TASKS.topic)


def _faust_consumer(
    consumer_class: type[faust_aiokafka.Consumer],
    acking: tuple[str, ...] = (kinds.IMPRESSIONS.topic,),
) -> Any:
    """A consumer of Faust's own classes in generation 2, acking ``acking``; no
    broker: nothing is started."""
    app = faust.App("consumer-guards", broker="kafka://127.0.0.1:9", store="memory://")

    async def nothing(*_: object) -> None:
        return None

    consumer = consumer_class(
        KafkaTransport(app.conf.broker_consumer, app),
        callback=nothing,
        on_partitions_revoked=nothing,
        on_partitions_assigned=nothing,
    )
    app.topics._acking_topics.update(acking)
    app.consumer_generation_id = 2
    return consumer


def _impression(offset: int, generation: int = 2) -> Message:
    return Message(
        "impressions", 0, offset, 0.0, 0, None, b"k", b"v", None, generation_id=generation
    )


async def _stale_copy_acked_by(consumer_class: type[faust_aiokafka.Consumer]) -> int | None:
    """The offset a commit would reach after a stream acks the stale copy of the
    record at offset 7: fetched in generation 1, handed over in generation 2, after
    the seek to the committed offset 7 that fetches it again."""
    consumer = _faust_consumer(consumer_class)
    tp = TP("impressions", 0)
    consumer._committed_offset[tp] = 7
    consumer.ack(_impression(7, generation=1))
    return consumer._new_offset(tp)


async def test_a_stale_copy_acked_is_not_committed_before_its_fresh_copy_is_processed() -> None:
    """Faust 0.15.3 skips a record fetched before a rebalance and acks it (streams.py,
    "ack the filtered message"); its consumer then commits past the offset whose
    fresh copy no agent has processed yet, and a crash loses it. The first line
    pins Faust's behaviour: when it fails, Faust changed and the guard can go."""
    assert await _stale_copy_acked_by(faust_aiokafka.Consumer) == 8
    assert await _stale_copy_acked_by(CurrentGenerationConsumer) is None


async def _committed_across_a_drop(consumer_class: type[faust_aiokafka.Consumer]) -> int | None:
    """The offset a commit would reach when records 8 and 9 were fetched and dropped
    on the way (a paused partition, a stopped flow): the stream got 7, then 10. Faust's
    drain loop reports the jump as a gap (transport/consumer.py, ``_drain_messages``),
    and both records reaching the stream are acked."""
    consumer = _faust_consumer(consumer_class)
    tp = TP("impressions", 0)
    consumer._committed_offset[tp] = 7  # the next record to read, as Kafka's
    await consumer._add_gap(tp, 8, 10)
    for offset in (7, 10):
        consumer.ack(_impression(offset))
    return consumer._new_offset(tp)


async def test_offsets_dropped_before_the_stream_are_never_committed_as_done() -> None:
    """Faust 0.15.3 marks a jump in fetched offsets as done and commits past records
    no agent saw: a crash then loses them (faust-streaming/faust#606). The commit
    stops at the jump instead. The first line pins Faust's behaviour."""
    assert await _committed_across_a_drop(faust_aiokafka.Consumer) == 11
    assert await _committed_across_a_drop(CurrentGenerationConsumer) == 8


async def _committed_past_an_unacked_head(
    consumer_class: type[faust_aiokafka.Consumer],
) -> int | None:
    """The offset a commit would reach when 88 is committed (the next record to read)
    and the stream acked 89 and 90 but never got 88 (handed over and thrown away on
    the way, app/compat/faust_flow.py)."""
    consumer = _faust_consumer(consumer_class)
    tp = TP("impressions", 0)
    consumer._committed_offset[tp] = 88
    for offset in (89, 90):
        consumer.ack(_impression(offset))
    return consumer._new_offset(tp)


async def test_a_record_never_acked_at_the_head_of_a_partition_is_never_committed_past() -> None:
    """Faust 0.15.3 checks the acked offsets' head as if the committed offset were the
    last record processed: it commits 91 past 88, which no agent processed. The first
    line pins Faust's behaviour."""
    assert await _committed_past_an_unacked_head(faust_aiokafka.Consumer) == 91
    assert await _committed_past_an_unacked_head(CurrentGenerationConsumer) is None


def _fetching(
    monkeypatch: pytest.MonkeyPatch, fetched: list[tuple[TP, Message]]
) -> list[dict[TP, int]]:
    """Faust's consumer made to fetch ``fetched`` on each getmany, with no active
    partition; the seeks asked of it are appended to the list returned."""
    sought: list[dict[TP, int]] = []

    async def fetch(self: Any, timeout: float) -> Any:  # noqa: ASYNC109 - Faust's signature
        for record in fetched:
            yield record

    async def seek_wait(self: Any, partitions: dict[TP, int]) -> None:
        sought.append(dict(partitions))

    monkeypatch.setattr(faust_aiokafka.Consumer, "getmany", fetch)
    monkeypatch.setattr(faust_aiokafka.Consumer, "seek_wait", seek_wait)
    monkeypatch.setattr(faust_aiokafka.Consumer, "_get_active_partitions", lambda self: set())
    return sought


async def test_a_record_beyond_a_drop_is_held_back_and_its_partition_fetched_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stream got 7; the fetch then hands over 10 (8 and 9 dropped on the way):
    10 is held back and the partition sought back to 8, so 8 and 9 are fetched again.
    Faust's own consumer hands 10 on (and marks 8..9 done, above)."""
    fetched = [(TP("impressions", 0), _impression(offset)) for offset in (7, 10)]
    sought = _fetching(monkeypatch, fetched)

    faust_own = _faust_consumer(faust_aiokafka.Consumer)
    assert [m.offset async for _, m in faust_own.getmany(1.0)] == [7, 10]

    ours = _faust_consumer(CurrentGenerationConsumer)
    ours._contiguous.positioned({TP("impressions", 0): 7})
    # Faust's drain loop read 8 and 9 before they were dropped on the way.
    ours._read_offset[TP("impressions", 0)] = 9
    assert [m.offset async for _, m in ours.getmany(1.0)] == [7]
    assert sought == [{TP("impressions", 0): 8}]
    # So that 8 and 9, fetched again, pass the drain loop's check (offset >= read
    # offset) instead of being dropped once more.
    assert ours._read_offset[TP("impressions", 0)] == 8


async def test_an_unacked_head_is_the_committed_offset_unacked_behind_a_later_ack(
    install_with: Install,
) -> None:
    """Nothing acked, nothing committed, the head acked: no unacked head. On a topic
    whose offsets may jump (a transaction's markers) a later ack is no sign of one."""
    consumer = _faust_consumer(CurrentGenerationConsumer, (kinds.IMPRESSIONS.topic, "forwards"))
    tp = TP("impressions", 0)
    assert consumer._unacked_head(tp) is None  # nothing acked
    consumer.ack(_impression(90))
    assert consumer._unacked_head(tp) is None  # nothing committed
    consumer._committed_offset[tp] = 88
    assert consumer._unacked_head(tp) == 88
    consumer.ack(_impression(88))
    assert consumer._unacked_head(tp) is None  # the head acked
    install_with(WORKER_PROCESSING_GUARANTEE="exactly_once")
    other = TP("forwards", 0)
    consumer._committed_offset[other] = 5
    consumer.ack(Message("forwards", 0, 7, 0.0, 0, None, b"k", b"v", None, generation_id=2))
    assert consumer._unacked_head(other) is None


async def test_a_record_handed_over_and_never_acked_is_fetched_again_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """88 is committed (the next to process) and 89, 90 are acked: 88 was handed over
    and lost on the way to the agents. Commits stop there; once the grace is over,
    the partition is sought back to 88 and its read offset moved back with it."""
    tp = TP("impressions", 0)
    sought = _fetching(monkeypatch, [])
    consumer = _faust_consumer(CurrentGenerationConsumer)
    consumer.HEADS_CHECKED_EVERY = 0.0
    now = [0.0]
    consumer.__dict__["_unacked_heads_state"] = UnackedHeads(grace_seconds=60, clock=lambda: now[0])
    consumer._committed_offset[tp] = 88
    for offset in (89, 90):
        consumer.ack(_impression(offset))
    consumer._read_offset[tp] = 90

    assert [m async for _, m in consumer.getmany(1.0)] == []
    now[0] = 59.0
    assert [m async for _, m in consumer.getmany(1.0)] == []
    assert sought == []
    now[0] = 60.0
    assert [m async for _, m in consumer.getmany(1.0)] == []
    assert sought == [{tp: 88}]
    assert consumer._read_offset[tp] == 88
    assert CurrentGenerationConsumer.unacked_heads_refetched >= 1
