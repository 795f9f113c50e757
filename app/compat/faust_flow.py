"""Faust's flow control, changed so that resuming a flow that is already running keeps
the records waiting in the streams' queues.

Every stream's queue is a ``FlowControlQueue`` made with ``clear_on_resume=True``
(faust/channels.py), and ``FlowControlEvent.resume()`` (mode/utils/queues.py) empties
every such queue, whether the flow was suspended or not. Clearing is meant for records
queued before a rebalance suspended the flow: they belong to the old assignment.

Faust 0.15.3 resumes the flow twice when partitions are assigned and a table needs
recovery (faust/tables/recovery.py): once to read the changelogs, and again after the
stream partitions were resumed and sought to their committed offsets
(``_on_recovery_completed``, ``_resume_streams``). Between the seek and that second
resume the drain loop fetches and hands over the stream partitions' first records; the
second resume then throws them out of the queues. No agent sees them, nothing acks them,
and the consumer has already moved past them, so they are not fetched again: commits
stop at the first of them until the worker restarts. Seen in test_scale_out: a worker
taking over a killed one's partition handed over its offsets 88..177 after the seek, and
its agent's first record was 178 (98 impressions answered with a GIF, not exported).

Here a resume of a flow that was not suspended changes nothing: the records queued
since the last resume were fetched in the current assignment, after the seek, and are
the streams' to process. A resume after a suspension still clears, as in Faust.

Written for faust-streaming 0.15.3 on mode-streaming 0.7.1 (app/compat/patches.py,
QUEUES_KEPT_ON_RESUME). No upstream issue was found. Test:
tests/unit/compat/test_faust_flow.py.
"""

from __future__ import annotations

import faust
from mode.utils.objects import cached_property
from mode.utils.queues import FlowControlEvent


class QueueKeepingFlowControl(FlowControlEvent):
    """A flow control whose resume clears the queues only after a suspension."""

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


class QueueKeepingApp(faust.App):
    """``faust.App`` with the flow control above; every stream queue registers with it
    when made, so it is in place before any agent is declared."""

    @cached_property
    def flow_control(self) -> FlowControlEvent:
        return QueueKeepingFlowControl(loop=self.loop)
