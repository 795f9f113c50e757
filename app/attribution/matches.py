"""Matched postbacks on their way from the postbacks agent to the conversions agent:
one ``postback-matches`` record per batch and partition (an envelope,
app.events.envelopes), not one per postback.

Each postback was two Faust events and four sends or more, and at 1,000
postbacks/s the worker's loop was CPU-bound on those per-record costs (bench/README,
"Postback verdict"). A batch's matches are grouped by the partition of their
action's key, so every postback of one advertiser action still meets the earlier
ones on one partition of the ``conversions`` table. That partition is the one
aiokafka's default partitioner gave the key when each match was a record of its
own, so a deployment's existing ``conversions`` table stays where it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import murmur2

from app.events import kinds
from app.events.envelopes import Envelope, UnreadableEnvelope, within_bytes
from app.events.records import Conversion, MatchedPostback, Postback

_MATCHES = kinds.POSTBACK_MATCHES.enveloped


def action_partition(key: str, partitions: int) -> int:
    """The partition of the action keyed ``key`` (app.attribution.conversions
    ``action_key``), as aiokafka's ``DefaultPartitioner`` places a key: murmur2 of its
    bytes, positive, modulo the partition count."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class MatchEnvelope:
    """One partition's matches of a batch, ready to send: keyed by its first
    postback's ID (unique, and time-ordered like every ID)."""

    partition: int
    key: str
    value: bytes


def match_envelopes(
    matches: Sequence[tuple[str, MatchedPostback]], partitions: int
) -> list[MatchEnvelope]:
    """``matches`` (action key, matched postback), in their order, as one envelope per
    partition their actions are on (more if they would not fit in one record)."""
    by_partition: dict[int, list[tuple[str, MatchedPostback]]] = {}
    for key, matched in matches:
        by_partition.setdefault(action_partition(key, partitions), []).append((key, matched))
    return [
        MatchEnvelope(partition, held[0][1].postback.postback_id, value)
        for partition, kept in by_partition.items()
        for held, value in within_bytes(_encode, kept)
    ]


def _encode(matches: Sequence[tuple[str, MatchedPostback]]) -> bytes:
    return _MATCHES.current.encode(
        [
            [key for key, _ in matches],
            [matched.postback.asdict() for _, matched in matches],
            [matched.conversion.asdict() for _, matched in matches],
        ]
    )


def read_matches(value: Any, key: Any) -> list[tuple[str, MatchedPostback]]:
    """The matches of one ``postback-matches`` record, in order.

    A record written before matches were enveloped (one JSON ``MatchedPostback``,
    keyed by its action) is read as the one match it is, so an upgrade with matches
    in flight loses none. :class:`UnreadableEnvelope` for anything else unreadable."""
    if not isinstance(value, bytes):
        raise UnreadableEnvelope(f"a postback-matches record of {type(value).__name__}")
    if value[:1] == b"{":
        return [_per_record(value, key)]
    envelope = _MATCHES.decode(value)
    return _matches_of(envelope)


def _matches_of(envelope: Envelope) -> list[tuple[str, MatchedPostback]]:
    found = []
    for key, postback, conversion in zip(
        envelope["action_key"], envelope["postback"], envelope["conversion"], strict=True
    ):
        if not isinstance(key, str) or not isinstance(postback, dict):
            raise UnreadableEnvelope(f"a match without an action key or postback: {key!r}")
        if not isinstance(conversion, dict):
            raise UnreadableEnvelope(f"the match of action {key!r} has no conversion")
        try:
            matched = MatchedPostback(
                postback=Postback(**postback), conversion=Conversion(**conversion)
            )
        except TypeError as exc:
            raise UnreadableEnvelope(f"the match of action {key!r}: {exc}") from None
        found.append((key, matched))
    return found


def _per_record(value: bytes, key: Any) -> tuple[str, MatchedPostback]:
    action = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if not isinstance(action, str) or not action:
        raise UnreadableEnvelope("a per-record postback match without its action key")
    try:
        # Faust builds nested records on first access: the checks are in the try too.
        matched = MatchedPostback.loads(value, serializer="json")
        whole = (
            isinstance(matched, MatchedPostback)
            and isinstance(matched.postback, Postback)
            and isinstance(matched.conversion, Conversion)
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise UnreadableEnvelope(f"a per-record postback match of {action!r}: {exc}") from None
    if not whole:
        raise UnreadableEnvelope(f"a per-record postback match of {action!r} is no match")
    return action, matched
