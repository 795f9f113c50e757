"""Faust's app, handing its running producer to a send without giving up the loop.

Every ``Topic.send`` and every table changelog record Faust flushes goes through
``Topic.publish_message``, which first asks ``App.maybe_start_producer`` for the
producer. Faust 0.15.3 wraps that method in mode's ``@stampede`` (faust/app/base.py),
and the wrapper begins with ``await asyncio.sleep(0)`` on every call
(``mode.utils.futures.StampedeWrapper.__call__``), also long after the producer
started. So each record sent waits for one whole turn of the event loop: every
ready task, the drain loop's hand-over of fetched records and the producer's sender
included, runs before the send goes on.

Measured in the soak (bench/soak.py, about 380 requests/s, envelopes of one to three
impressions): one ``Topic.send`` of the impressions agent took 4.3 ms on average
(70 % over 1 ms) while the worker used 35 % of a core; the agent spent 4.3 s of every
5 s in its sends, recorded about 100 envelopes/s and fell behind by 65-80 records/s.

Once the producer has started, the app below returns it at once; before that (and
under exactly_once, where Faust hands out its transaction manager) Faust's own
stampede-guarded start runs as before.

Written for faust-streaming 0.15.3 (app/compat/patches.py, RUNNING_PRODUCER). No
upstream issue was found. Test: tests/unit/compat/test_faust_producer.py.
"""

from __future__ import annotations

from typing import Any

import faust


class RunningProducerApp(faust.App):
    """``faust.App`` whose ``maybe_start_producer`` does not yield once the producer runs."""

    async def maybe_start_producer(self) -> Any:
        if not self.in_transaction:
            producer = self.producer
            if producer.started:
                return producer
        return await super().maybe_start_producer()
