"""The drain loop hands each fetched record to the streams as Faust's does, without a
task per record when the hand-over does not wait (app/compat/faust_drain.py).

Each behaviour is run on Faust's own consumer and on ours: the first pins Faust's
loop, the second shows the patched loop keeps it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import faust
import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from faust.types.tuples import Message

from app.compat.faust_consumer import CurrentGenerationConsumer, KafkaTransport

FAUSTS = faust_aiokafka.Consumer
OURS = CurrentGenerationConsumer
BOTH = pytest.mark.parametrize("consumer_class", [FAUSTS, OURS], ids=["faust", "ours"])
# Not an acking topic: the contiguity guard and gap bookkeeping stay out of the way.
TOPIC = "drained"
# A loop that waits for a held hand-over never ends: such a test fails after this
# long instead of hanging. Not a speed check: an interrupted loop ends in milliseconds.
HUNG_SECONDS = 10

Callback = Callable[[Message], Awaitable[None]]


class Fetcher:
    """What the drain loop reads of Faust's Fetcher service: whether it stopped."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()


def _records(*offsets: tuple[int, int]) -> list[tuple[TP, Message]]:
    """(partition, offset) pairs as fetched."""
    return [
        (TP(TOPIC, p), Message(TOPIC, p, o, 0.0, 0, None, b"k", b"v", None, generation_id=2))
        for p, o in offsets
    ]


@pytest.fixture
def fetch(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Fetcher]]:
    """``fetch(records)``: Faust's fetch hands over ``records`` once, then nothing and
    the fetcher stops (so the loop ends after one batch unless stopped before)."""

    def fetching(records: list[tuple[TP, Message]]) -> Fetcher:
        fetcher = Fetcher()
        batches = [records]

        async def getmany(self: Any, timeout: float) -> Any:  # noqa: ASYNC109 - Faust's signature
            if not batches:
                fetcher._stopped.set()
                return
            for record in batches.pop():
                yield record

        monkeypatch.setattr(FAUSTS, "getmany", getmany)
        monkeypatch.setattr(FAUSTS, "_get_active_partitions", lambda self: set())
        return fetcher

    yield fetching


def _consumer(consumer_class: type[FAUSTS], callback: Callback) -> Any:
    """A consumer of ``consumer_class`` handing records to ``callback``; nothing started."""
    app = faust.App("drain", broker="kafka://127.0.0.1:9", store="memory://")

    async def nothing(*_: object) -> None:
        return None

    return consumer_class(
        KafkaTransport(app.conf.broker_consumer, app),
        callback=callback,
        on_partitions_revoked=nothing,
        on_partitions_assigned=nothing,
    )


class HandOver:
    """A callback that notes each record it is given and finishes; the records in
    ``waiting`` it holds until ``release`` is set (or it is cancelled)."""

    def __init__(self, *waiting: int) -> None:
        self.noted: list[str] = []
        self.waiting = set(waiting)
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, message: Message) -> None:
        self.noted.append(f"start {message.partition}:{message.offset}")
        if message.offset in self.waiting:
            self.holding.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.noted.append(f"cancelled {message.partition}:{message.offset}")
                raise
        self.noted.append(f"end {message.partition}:{message.offset}")


async def _tasks_made_while(drained: Awaitable[None]) -> int:
    loop = asyncio.get_running_loop()
    made = 0

    def counting(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        nonlocal made
        made += 1
        return asyncio.Task(coro, loop=loop, **kwargs)

    loop.set_task_factory(counting)
    try:
        await drained
    finally:
        loop.set_task_factory(None)
    return made


async def test_a_record_handed_over_without_waiting_takes_no_task_of_its_own(
    fetch: Callable[..., Fetcher],
) -> None:
    """Faust 0.15.3 races each hand-over against the flow stopping and the consumer
    stopping or crashing: four tasks and an asyncio.wait per record, 15 % of an
    event's time (issue 23). Ours runs a hand-over that does not wait in the loop."""
    records = _records(*((p, o) for o in range(50) for p in range(2)))
    made = {}
    for consumer_class in (FAUSTS, OURS):
        consumer = _consumer(consumer_class, HandOver())
        made[consumer_class] = await _tasks_made_while(consumer._drain_messages(fetch(records)))
    assert made[FAUSTS] >= 4 * len(records)
    assert made[OURS] < 4  # Faust's own sleep(0) per fetch: none per record


@BOTH
async def test_every_record_is_handed_over_once_in_the_order_fetched(
    consumer_class: type[FAUSTS], fetch: Callable[..., Fetcher]
) -> None:
    """A hand-over that waits (here 0:1 and 1:2) is finished before the next begins,
    and each partition's read offset is its last record's."""
    fetched = [(0, 0), (1, 0), (0, 1), (1, 1), (0, 2), (1, 2)]
    hand_over = HandOver(1, 2)
    hand_over.release.set()
    consumer = _consumer(consumer_class, hand_over)
    await consumer._drain_messages(fetch(_records(*fetched)))
    assert hand_over.noted == [f"{step} {p}:{o}" for p, o in fetched for step in ("start", "end")]
    assert consumer._read_offset == {TP(TOPIC, 0): 2, TP(TOPIC, 1): 2}


@BOTH
async def test_a_record_below_the_read_offset_is_not_handed_over(
    consumer_class: type[FAUSTS], fetch: Callable[..., Fetcher]
) -> None:
    """Faust's check, kept: a partition sought back moves its read offset back too
    (app/compat/faust_consumer.py), anything else below it was handed over already."""
    hand_over = HandOver()
    consumer = _consumer(consumer_class, hand_over)
    consumer._read_offset[TP(TOPIC, 0)] = 5
    await consumer._drain_messages(fetch(_records((0, 4), (0, 5), (0, 6))))
    assert hand_over.noted == ["start 0:5", "end 0:5", "start 0:6", "end 0:6"]


async def _interrupted(
    consumer: Any, hand_over: HandOver, fetcher: Fetcher, interrupt: Callable[[], None]
) -> None:
    drain = asyncio.create_task(consumer._drain_messages(fetcher))
    await hand_over.holding.wait()
    interrupt()
    await asyncio.wait_for(drain, HUNG_SECONDS)


@BOTH
async def test_a_flow_stopped_while_a_hand_over_waits_cancels_it_and_the_loop_goes_on(
    consumer_class: type[FAUSTS], fetch: Callable[..., Fetcher]
) -> None:
    """A rebalance stops the flow: the waiting hand-over is cancelled (the record is
    fetched again from the committed offset), the loop does not wait for it."""
    hand_over = HandOver(1)
    consumer = _consumer(consumer_class, hand_over)
    fetcher = fetch(_records((0, 0), (0, 1), (0, 2)))
    await _interrupted(consumer, hand_over, fetcher, consumer.stop_flow)
    assert hand_over.noted == [
        *("start 0:0", "end 0:0", "start 0:1", "cancelled 0:1"),
        *("start 0:2", "end 0:2"),
    ]
    assert consumer._read_offset[TP(TOPIC, 0)] == 2


@BOTH
async def test_a_consumer_stopped_while_a_hand_over_waits_cancels_it_and_ends_the_loop(
    consumer_class: type[FAUSTS], fetch: Callable[..., Fetcher]
) -> None:
    """The batch in hand is gone through (Faust's loop checks for a stop between
    fetches), and no other fetch is made."""
    hand_over = HandOver(0)
    consumer = _consumer(consumer_class, hand_over)
    fetcher = fetch(_records((0, 0), (0, 1)))
    await _interrupted(consumer, hand_over, fetcher, consumer._stopped.set)
    assert hand_over.noted == ["start 0:0", "cancelled 0:0", "start 0:1", "end 0:1"]
    assert not fetcher._stopped.is_set(), "fetched again after the consumer stopped"


@BOTH
async def test_the_loop_cancelled_while_a_hand_over_waits_cancels_the_hand_over(
    consumer_class: type[FAUSTS], fetch: Callable[..., Fetcher]
) -> None:
    """The fetcher stopping cancels its loop (Fetcher.on_stop): the record in hand is
    not handed over, and the loop ends cancelled, not waiting for it."""
    hand_over = HandOver(0)
    consumer = _consumer(consumer_class, hand_over)
    drain = asyncio.create_task(consumer._drain_messages(fetch(_records((0, 0), (0, 1)))))
    await hand_over.holding.wait()
    drain.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(drain, HUNG_SECONDS)
    assert hand_over.noted == ["start 0:0", "cancelled 0:0"]
    assert consumer._read_offset[TP(TOPIC, 0)] is None


@BOTH
@pytest.mark.parametrize("waits", [False, True], ids=["at once", "after waiting"])
async def test_a_hand_over_that_fails_ends_the_loop_with_its_error(
    consumer_class: type[FAUSTS], waits: bool, fetch: Callable[..., Fetcher]
) -> None:
    handed: list[int] = []

    async def failing(message: Message) -> None:
        handed.append(message.offset)
        if waits:
            await asyncio.sleep(0)
        raise LookupError(f"no channel for {message.offset}")

    consumer = _consumer(consumer_class, failing)
    with pytest.raises(LookupError, match="no channel for 0"):
        await consumer._drain_messages(fetch(_records((0, 0), (0, 1))))
    assert handed == [0]
