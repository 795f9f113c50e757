"""Records a reader cannot read go to the ``unreadable-records`` topic, as they were.

A reader that meets a record it cannot read (an envelope of a format byte it does
not know, written by a newer imptrack; bytes that are no envelope at all) must
neither stop its partition nor drop the record: it copies the record, key and value
untouched, to ``unreadable-records`` with headers saying where it came from and why,
logs one line saying the same, and goes on. Once a reader that knows the format
runs, the records can be read from there.
"""

from __future__ import annotations

import logging

from app.events import kinds
from app.events.provenance import SOURCE_OFFSET, SOURCE_PARTITION, SOURCE_TOPIC, source_headers

__all__ = ["REASON", "SOURCE_OFFSET", "SOURCE_PARTITION", "SOURCE_TOPIC", "headers", "log_sent"]

TOPIC = kinds.UNREADABLE.topic

REASON = "imptrack-reason"


def headers(topic: str, partition: int, offset: int, reason: str) -> list[tuple[str, bytes]]:
    """The headers of an unreadable record's copy."""
    return [*source_headers(topic, partition, offset), (REASON, reason.encode())]


def log_sent(log: logging.Logger, topic: str, partition: int, offset: int, reason: str) -> None:
    log.error(
        "unreadable record at %s:%d offset %d sent to %s: %s",
        topic,
        partition,
        offset,
        TOPIC,
        reason,
    )
