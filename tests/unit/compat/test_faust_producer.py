"""A send gets the running producer without a turn of the event loop
(app/compat/faust_producer.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import faust

from app.compat.faust_producer import RunningProducerApp


async def _gives_up_the_loop(app: faust.App) -> tuple[bool, Any]:
    """Whether asking ``app`` for its producer let another ready callback run first."""
    others_ran: list[bool] = []
    asyncio.get_running_loop().call_soon(others_ran.append, True)
    producer = await app.maybe_start_producer()
    return bool(others_ran), producer


def _with_running_producer(app_class: type[faust.App]) -> faust.App:
    app = app_class("running-producer", broker="kafka://127.0.0.1:9", store="memory://")
    # As if started: starting it for real needs a broker, and the start is not the
    # question here.
    app.producer._started.set()
    return app


async def test_faust_gives_up_the_loop_for_every_send() -> None:
    """Pins Faust 0.15.3's behaviour: when this fails, Faust changed and the patch can go."""
    app = _with_running_producer(faust.App)
    gave_up, producer = await _gives_up_the_loop(app)
    assert gave_up
    assert producer is app.producer


async def test_the_running_producer_is_handed_over_at_once() -> None:
    app = _with_running_producer(RunningProducerApp)
    for _ in range(3):
        gave_up, producer = await _gives_up_the_loop(app)
        assert not gave_up
        assert producer is app.producer


async def test_a_producer_not_started_yet_is_started_by_faust() -> None:
    """Before the start, Faust's own (stampede-guarded) start runs."""
    app = RunningProducerApp("running-producer", broker="kafka://127.0.0.1:9", store="memory://")
    started: list[bool] = []

    async def start() -> None:
        started.append(True)
        app.producer._started.set()

    app.producer.start = start  # type: ignore[method-assign]
    assert await app.maybe_start_producer() is app.producer
    assert started == [True]
