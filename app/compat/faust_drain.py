"""Faust's drain loop, handing each fetched record to the streams without a race of
tasks when the hand-over does not wait.

Faust 0.15.3 (``Consumer._drain_messages``, faust/transport/consumer.py) awaits the
callback that hands a record to its streams (the conductor's ``on_message``) through
``Service.wait_first(callback(message), self.suspend_flow.wait())``: four tasks (the
callback, the suspended flow, the consumer stopped, the consumer crashed) and an
``asyncio.wait`` per record, so that a callback still waiting when the flow is
suspended or the consumer stops is cancelled instead of holding the loop. The
callback almost never waits: it decodes the record and puts it in a stream's buffer
that has room. Issue 23 measured that race at 15 % of a Faust event's time (py-spy).

So the callback runs in the drain loop's own task up to its first wait
(:func:`run_until_wait`); only one that does wait (flow control suspended, a full
buffer, the producer's buffer full) goes through Faust's race, with the rest of it as
the racing task. What the loop does with a record is otherwise Faust's, line for line:
the read offset, the gap reported, the commit every N acks, a yield to the event loop
every 100 records, the errors it ends on. A callback that does not wait is done
before anything else runs, as in Faust's loop when no stop comes between the record's
task and its first step; one that waits is raced, stopped and cancelled as there.

Written for faust-streaming 0.15.3 (app/compat/patches.py, DIRECT_DRAIN). No upstream
issue was found; faust-streaming/faust#229 reports a conductor stuck at the same
``wait_first`` line, which this patch leaves as it is for a callback that waits.
Test: tests/unit/compat/test_faust_drain.py (a record handed over in a task of its
own fails it; the rest pins that both loops deliver, stop and cancel alike).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Generator
from typing import Any

from faust.transport.consumer import CONSUMER_FETCHING

# Faust's: the loop yields to the event loop after this many records in a row.
YIELD_EVERY = 100


class _Rest:
    """The rest of a coroutine that :func:`run_until_wait` ran up to ``waiting_on``.
    Awaited (by the task ``wait_first`` makes of it), it gives that task what the
    coroutine waits on and passes on what the task sends or throws (a cancellation)."""

    def __init__(self, coro: Coroutine[Any, Any, Any], waiting_on: Any) -> None:
        self._coro = coro
        self._waiting_on = waiting_on

    def __await__(self) -> Generator[Any, Any, Any]:
        coro, waiting_on = self._coro, self._waiting_on
        while True:
            try:
                sent = yield waiting_on
            except GeneratorExit:
                coro.close()
                raise
            except BaseException as exc:  # the task's throw (a cancellation), passed on
                try:
                    waiting_on = coro.throw(exc)
                except StopIteration as done:
                    return done.value
            else:
                try:
                    waiting_on = coro.send(sent)
                except StopIteration as done:
                    return done.value


def run_until_wait(coro: Coroutine[Any, Any, Any]) -> _Rest | None:
    """Run ``coro`` in the current task until it first waits; None if it finished
    without waiting (its result is dropped: Faust's callback returns None), else an
    awaitable of its rest. What it raises before waiting is raised here."""
    try:
        waiting_on = coro.send(None)
    except StopIteration:
        return None
    return _Rest(coro, waiting_on)


async def _finish_unless_stopped(consumer: Any, rest: _Rest) -> None:
    """Faust's race: the rest of a hand-over against the flow stopping and the consumer
    stopping or crashing, whichever comes first; a hand-over left behind is cancelled."""
    finishing = asyncio.ensure_future(rest)
    await consumer.wait_first(finishing, consumer.suspend_flow.wait())
    if not finishing.done():
        # Its cancellation is under way. Faust's loop gives it a step before the next
        # record is handed over (the next race waits first); the next hand-over here
        # may not wait at all, so the step is given here.
        await asyncio.sleep(0)


async def drain_messages(consumer: Any, fetcher: Any) -> None:
    """Faust's ``Consumer._drain_messages`` with the callback run by
    :func:`run_until_wait` (see the module's docstring)."""
    callback = consumer.callback
    getmany = consumer.getmany
    consumer_should_stop = consumer._stopped.is_set
    fetcher_should_stop = fetcher._stopped.is_set
    get_read_offset = consumer._read_offset.__getitem__
    set_read_offset = consumer._read_offset.__setitem__
    set_flag = consumer.diag.set_flag
    unset_flag = consumer.diag.unset_flag
    commit_every = consumer._commit_every
    acks_enabled_for = consumer.app.topics.acks_enabled_for
    since_yield = 0
    try:
        while not (consumer_should_stop() or fetcher_should_stop()):
            set_flag(CONSUMER_FETCHING)
            records = getmany(timeout=1.0)
            # Faust's: getmany may be called in a loop that never releases the event loop.
            await consumer.sleep(0)
            if not consumer.should_stop:
                async for tp, message in records:
                    since_yield += 1
                    if since_yield > YIELD_EVERY:
                        await asyncio.sleep(0)
                        since_yield = 0
                    offset = message.offset
                    read_offset = get_read_offset(tp)
                    if read_offset is None or offset >= read_offset:
                        gap = offset - (read_offset or 0)
                        if gap > 1 and read_offset and acks_enabled_for(message.topic):
                            await consumer._add_gap(tp, read_offset + 1, offset)
                        if commit_every is not None and consumer._n_acked >= commit_every:
                            consumer._n_acked = 0
                            await consumer.commit()
                        rest = run_until_wait(callback(message))
                        if rest is not None:
                            await _finish_unless_stopped(consumer, rest)
                        set_read_offset(tp, offset)
                    else:
                        consumer.log.dev(
                            "DROPPED MESSAGE ROFF %r: k=%r v=%r", offset, message.key, message.value
                        )
                unset_flag(CONSUMER_FETCHING)
    except consumer.consumer_stopped_errors:
        if consumer.transport.app.should_stop:
            consumer.log.info("Broker stopped consumer, shutting down...")
            return
        raise
    except asyncio.CancelledError:
        if consumer.transport.app.should_stop:
            consumer.log.info("Consumer shutting down for user cancel.")
            return
        raise
    except Exception as exc:
        consumer.log.exception("Drain messages raised: %r", exc)
        raise
