"""Which event partition each event the edge accepts goes to.

Every ID names its partition (app.ids), and every event lives on the partition of the
ID it is about: a new impression or click on the next partition in turn, a postback
on the partition of the click or impression it names, where the worker holding
that part of the clicks and impressions tables reads it. No key is hashed, so no
lookup is needed to route a postback, and the partition count must stay fixed for
a deployment (docs/OPERATIONS.md, "The partition count").
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

from app.ids import IdGenerator, IdSeal


class Placement:
    def __init__(self, ids: IdGenerator, partitions: int) -> None:
        self.ids = ids
        self.partitions = partitions
        # Each process starts at its own partition, so a fleet of edges that each
        # took one event does not put them all on partition 0.
        self._turns = itertools.cycle([(ids.node + n) % partitions for n in range(partitions)])

    @property
    def seal(self) -> IdSeal:
        return self.ids.seal

    def next_partition(self) -> int:
        return next(self._turns)

    def new_id(self) -> str:
        """The ID of a new event of its own (a click), on the next partition in turn."""
        return self.ids.new_id(partition=self.next_partition())

    def of_postback(self, params: Mapping[str, str]) -> int:
        """A postback's partition: that of the click or impression it names (the
        worker holding that part of the clicks and impressions tables reads it,
        app.events.kinds.POSTBACKS), else the next in turn."""
        named = self.named(params.get("clickid", ""), params.get("aimp_id", ""))
        return self.next_partition() if named is None else named

    def named(self, *values: str) -> int | None:
        """The partition of the first of ``values`` this network issued; None when
        none is. An ID of a deployment with more partitions (which the partition
        count being fixed rules out) lands on one that exists, whose worker then does
        not know it."""
        for value in values:
            partition = self.ids.seal.partition(value) if value else None
            if partition is not None:
                return partition % self.partitions
        return None
