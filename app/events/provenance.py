"""Where a record was made from: the topic, partition and offset of the record an
agent made it from, in the record's headers.

A record set aside as unreadable carries them (app.events.dead_letters), and so does
an envelope of forward tasks: the forwarder recognises a replay of one by its source
(app.forwarding.schedule), with no key kept per impression.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SOURCE_TOPIC = "imptrack-source-topic"
SOURCE_PARTITION = "imptrack-source-partition"
SOURCE_OFFSET = "imptrack-source-offset"


@dataclass(frozen=True)
class Source:
    """The record a record was made from."""

    topic: str
    partition: int
    offset: int


def source_headers(topic: str, partition: int, offset: int) -> list[tuple[str, bytes]]:
    """The headers naming a record's source."""
    return [
        (SOURCE_TOPIC, topic.encode()),
        (SOURCE_PARTITION, str(partition).encode()),
        (SOURCE_OFFSET, str(offset).encode()),
    ]


def source_of(headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] | None) -> Source | None:
    """The source a record's headers name; None if they name none, or not readably
    (a record written before sources were, or by something else)."""
    if headers is None:
        return None
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    found = {name: value for name, value in pairs if isinstance(value, bytes | bytearray)}
    try:
        topic = found[SOURCE_TOPIC].decode()
        partition = int(found[SOURCE_PARTITION])
        offset = int(found[SOURCE_OFFSET])
    except (KeyError, ValueError, UnicodeDecodeError):
        return None
    if not topic or partition < 0 or offset < 0:
        return None
    return Source(topic, partition, offset)
