"""Deleting a table's oldest keys, one partition at a time.

Faust tables never expire their keys (only windowed tables do, by window). The
impressions table is keyed by envelope keys, which begin with their time
(app.ids.envelope_key), so its expired entries are the first keys of each
partition's database, in RocksDB's byte order. Faust has no call to list one
partition's keys from the start, nor to delete a key outside stream iteration:
the store's per-partition databases (``Store._dbs``, rocksdict) are read here, and
each delete goes through the table with Faust's private current-event variable set
to a stand-in event of that partition, as app.compat.table_writes does, so the
delete reaches the right database and its changelog partition as a tombstone.
Written for faust-streaming 0.15.3 and rocksdict 0.3.29 (app/compat/patches.py).
"""

from __future__ import annotations

import itertools
import weakref
from types import SimpleNamespace
from typing import Any

from faust.streams import _current_event
from faust.types import TP

from app.compat.patches import TABLE_EXPIRY, missing_internal


def partitions_held(table: Any) -> list[int]:
    """The partitions of ``table`` this worker holds a database for (the memory
    store of the unit tests holds them all in one dict: partition 0 stands for it)."""
    dbs = getattr(table.data, "_dbs", None)
    if dbs is None:
        if not isinstance(table.data.data, dict):
            raise missing_internal(TABLE_EXPIRY, "Store._dbs")
        return [0]
    return sorted(dbs)


def keys_below(table: Any, partition: int, below: str, limit: int) -> list[str]:
    """Up to ``limit`` of the first keys of ``partition`` that sort below ``below``.

    The store keeps keys as the table's key serializer wrote them (JSON strings,
    whatever the schema says), which sort as the keys do: the scan stops at the
    first key not below."""
    store = table.data
    dbs = getattr(store, "_dbs", None)
    if dbs is None:
        return sorted(k for k in store.data if k < below)[:limit]
    db = dbs.get(partition)
    if db is None:
        return []
    keys = (store._decode_key(raw) for raw in db.keys())  # noqa: SIM118 - an Rdict, whose iteration is not its keys
    return list(itertools.islice(itertools.takewhile(lambda k: k < below, keys), limit))


class _StandIn:
    """What Faust reads of the current event to place a table write: its message's
    partition (a weak reference to it is kept, so a class, not a namespace)."""

    def __init__(self, topic: str, partition: int) -> None:
        self.message = SimpleNamespace(tp=TP(topic, partition), partition=partition, topic=topic)


def delete_in_partition(table: Any, topic: str, partition: int, key: str) -> None:
    """``del table[key]`` on ``partition`` of ``topic`` (the table's input), with its
    changelog tombstone."""
    stand_in = _StandIn(topic, partition)
    token = _current_event.set(weakref.ref(stand_in))  # type: ignore[arg-type]
    try:
        if key in table:
            del table[key]
    finally:
        _current_event.reset(token)
