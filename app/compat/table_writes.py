"""Writing tables from batches taken with ``stream.take_events``.

Faust refuses a table write outside stream iteration ("Cannot modify table key from
outside of stream iteration"), and a batch's loop is outside it: upstream
https://github.com/faust-streaming/faust/issues/497 (open; also #300). Written for
faust-streaming 0.15.3 (app/compat/patches.py). Without the functions below the
impressions agent crashes on its first write, and every integration test that sends
a pixel fails (tried on Apache Kafka 4.4: test_pixel_to_duckdb exported 0 of 800).
"""

from __future__ import annotations

import weakref
from typing import Any

from faust.streams import _current_event


def write_in_event_partition(event: Any, table: Any, key: Any, value: Any) -> None:
    """Set ``table[key] = value`` on the partition ``event`` came from.

    Faust picks a table write's changelog partition and RocksDB shard from the
    current event, a task-local context variable that batch iteration leaves
    unset. Only that variable is set here: ``Stream.current_event`` must not be
    touched, because ``take_events`` reads it, across an await, to know which event
    it is buffering — overwriting it there duplicates some events and drops others.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        table[key] = value
    finally:
        _current_event.reset(token)


def read_in_event_partition(event: Any, table: Any, key: Any) -> Any:
    """``table.get(key)`` from the partition ``event`` came from (see
    :func:`write_in_event_partition`): the table's partition for a key is that of
    the event it was written with, and a co-partitioned event shares it."""
    token = _current_event.set(weakref.ref(event))
    try:
        return table.get(key)
    finally:
        _current_event.reset(token)
