"""Envelopes: one Kafka record carrying many events of one kind, column by column.

The per-record cost of a Kafka client and of a Faust agent (issue 23: ~230 µs a
record) is paid once per envelope instead of once per impression. An envelope is

- one format byte, saying which fields follow and in which order (a version: a
  reader meeting a byte it does not know sends the record to the dead-letter topic,
  app.events.dead_letters, and never guesses);
- then a JSON array of columns, one per field, each as long as the envelope holds
  events (orjson: the fastest encoder at hand, and readable with any JSON tool).

Columns are what the exporter hands to Arrow as they are, with no dict per row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson

from app.exceptions import ImptrackError

ENVELOPE_BYTES = 512 * 1024
"""The most an envelope made of events of unbounded size (postbacks, whose parameters
may take up to the edge's 64 KiB body each) is let grow to: the producer's batch
size, well under Kafka's 1 MB default for a record."""

T = TypeVar("T")


def within_bytes(
    encode: Callable[[Sequence[T]], bytes], events: Sequence[T], limit: int = ENVELOPE_BYTES
) -> list[tuple[Sequence[T], bytes]]:
    """``events`` as envelopes of at most ``limit`` bytes each (an event larger than
    that alone in its own), each with the events it holds, in order. Halved until
    they fit: envelopes usually fit whole, so a split costs an encoding rarely."""
    value = encode(events)
    if len(value) <= limit or len(events) <= 1:
        return [(events, value)]
    half = len(events) // 2
    return within_bytes(encode, events[:half], limit) + within_bytes(encode, events[half:], limit)


class UnreadableEnvelope(ImptrackError):
    """A record that is not an envelope this version of imptrack can read."""


class UnknownFormat(UnreadableEnvelope):
    """An envelope's format byte names no format of its kind known here (written by a
    newer imptrack, or by something else)."""


@dataclass(frozen=True)
class EnvelopeFormat:
    """One version of one kind's envelope: its format byte and its fields, in order."""

    kind: str
    version: int
    fields: tuple[str, ...]

    def encode(self, columns: Sequence[Sequence[Any]]) -> bytes:
        """The envelope of ``columns`` (one per field, in order, all of one length)."""
        if len(columns) != len(self.fields):
            raise ValueError(
                f"{self.kind} v{self.version}: {len(columns)} columns for {len(self.fields)} fields"
            )
        return bytes((self.version,)) + orjson.dumps(columns)

    def encode_records(self, records: Sequence[Any]) -> bytes:
        """The envelope of ``records`` (objects with an attribute per field, such as
        Faust records)."""
        return self.encode([[getattr(r, name) for r in records] for name in self.fields])

    def encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> bytes:
        """The envelope of ``rows`` (a missing field is null)."""
        return self.encode([[row.get(name) for row in rows] for name in self.fields])

    def empty(self) -> bytes:
        return self.encode([[] for _ in self.fields])


class Envelope:
    """A decoded envelope: its columns by field name."""

    __slots__ = ("columns", "format")

    def __init__(self, fmt: EnvelopeFormat, columns: dict[str, list[Any]]) -> None:
        self.format = fmt
        self.columns = columns

    def __len__(self) -> int:
        return len(self.columns[self.format.fields[0]])

    def __getitem__(self, field: str) -> list[Any]:
        return self.columns[field]

    def rows(self) -> Iterator[dict[str, Any]]:
        """Each event as a dict: for code that takes one event at a time."""
        names = self.format.fields
        for values in zip(*(self.columns[name] for name in names), strict=True):
            yield dict(zip(names, values, strict=True))

    def row(self, index: int) -> dict[str, Any]:
        return {name: self.columns[name][index] for name in self.format.fields}


@dataclass(frozen=True)
class EnvelopeKind:
    """Every format a kind's envelopes have had; the newest is written."""

    kind: str
    formats: tuple[EnvelopeFormat, ...]

    @property
    def current(self) -> EnvelopeFormat:
        return self.formats[-1]

    def decode(self, data: bytes) -> Envelope:
        """The envelope in ``data``; :class:`UnknownFormat` for a format byte of no
        known version, :class:`UnreadableEnvelope` for anything else unreadable."""
        if not data:
            raise UnreadableEnvelope(f"an empty record is no {self.kind} envelope")
        fmt = next((f for f in self.formats if f.version == data[0]), None)
        if fmt is None:
            known = ", ".join(str(f.version) for f in self.formats)
            raise UnknownFormat(
                f"{self.kind} envelope of format {data[0]}, which this imptrack does not "
                f"know (it reads {known})"
            )
        try:
            columns = orjson.loads(data[1:])
        except orjson.JSONDecodeError as exc:
            raise UnreadableEnvelope(f"{self.kind} envelope v{fmt.version}: {exc}") from None
        if (
            not isinstance(columns, list)
            or len(columns) != len(fmt.fields)
            or not all(isinstance(c, list) for c in columns)
            or len({len(c) for c in columns}) > 1
        ):
            raise UnreadableEnvelope(
                f"{self.kind} envelope v{fmt.version}: not {len(fmt.fields)} columns of one length"
            )
        return Envelope(fmt, dict(zip(fmt.fields, columns, strict=True)))


def envelope_kind(kind: str, *versions: tuple[str, ...]) -> EnvelopeKind:
    """A kind whose formats are ``versions`` in order, numbered from 1."""
    return EnvelopeKind(
        kind,
        tuple(EnvelopeFormat(kind, n, fields) for n, fields in enumerate(versions, start=1)),
    )
