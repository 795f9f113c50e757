"""Finding the impression a click followed, from what the worker keeps on disk beside
the ``impressions`` table.

- A click naming an ``aimp_id``: the ID names its partition, envelope and slot
  (app.ids), so the impression is read from its envelope's table entry, the same
  read a postback's match makes. It is linked only to an impression of the same
  offer and affiliate, and the link carries that impression's ``imp_id``.
- A click carrying only the affiliate's ``imp_id``: the partition's links index
  (the worker's RocksDB, app/attribution/links_store.py) holds
  ``i<offer_id>:<pid>:<imp_id>`` → ``aimp_id`` for each recorded impression that
  has an ``imp_id``, written in the same write as its envelope's table entry and
  deleted with it once past every view-through window. The edge places every
  impression with an ``imp_id`` on the partition :func:`imp_id_partition` gives, so
  a click finds the entry's partition without a lookup. An ``imp_id`` reused by the
  affiliate points at its latest impression.

The index once held an ``a<aimp_id>`` entry per impression too, for the first kind
of click: it doubled the index's writes, made half its bytes on disk (57 B an
impression) and made the table's rebuild from its changelog 7.5 times as slow as
without an index (app/compat/indexed_store.py); the table entry holds the same.

The edge asks the worker holding the partition (app/edge/links.py), which answers
on a thread of its own (app/streams/links_server.py), so the redirect does not wait
behind the agents. What one partition's index holds is bounded like the table:
impressions/s x (longest view-through window + margin) entries at most
(agents/impressions_expiry.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass

from app.attribution.impressions import recorded_impression
from app.events.envelopes import Envelope, UnreadableEnvelope
from app.ids import IdParts

BY_AIMP_ID = "aimp_id"
"""Linked by the click's ``aimp_id`` parameter."""
BY_IMP_ID = "imp_id"
"""Linked by the affiliate's ``imp_id`` for this offer and affiliate."""
NOT_FOUND = "none"
"""No impression of this offer and affiliate within its view-through window."""
UNAVAILABLE = "unavailable"
"""The worker holding the index did not answer in time; the click is tracked,
without a link."""
LINKS = (BY_AIMP_ID, BY_IMP_ID, NOT_FOUND, UNAVAILABLE)


@dataclass(frozen=True)
class Link:
    how: str
    aimp_id: str | None = None
    imp_id: str | None = None  # the linked impression's, as the affiliate sent it


def imp_id_partition(offer_id: int, pid: int, imp_id: str, partitions: int) -> int:
    """The partition of every impression of ``offer_id`` by ``pid`` carrying
    ``imp_id``, and so of its index entry. CRC-32: the same in every edge process
    (Python's ``hash`` of a string is not), and fast."""
    return zlib.crc32(f"{offer_id}:{pid}:{imp_id}".encode()) % partitions


def imp_entry_key(offer_id: int, pid: int, imp_id: str) -> bytes:
    return _imp_key_prefix(offer_id, pid) + imp_id.encode()


def _imp_key_prefix(offer_id: int, pid: int) -> bytes:
    return f"i{offer_id}:{pid}:".encode()


def link_entries(recorded: Envelope) -> list[tuple[bytes, bytes]]:
    """The index entries of an envelope of recorded impressions: one for each
    impression that carries an ``imp_id``."""
    column = recorded.columns
    # Built from one prefix per offer and affiliate (an envelope's impressions mostly
    # share them): the rebuild of a table from its changelog makes these keys for
    # every impression it holds.
    prefixes: dict[tuple[int, int], bytes] = {}
    entries = []
    for aimp_id, offer_id, pid, imp_id in zip(
        column["aimp_id"], column["offer_id"], column["pid"], column["imp_id"], strict=True
    ):
        if imp_id:
            prefix = prefixes.get((offer_id, pid))
            if prefix is None:
                prefix = prefixes[(offer_id, pid)] = _imp_key_prefix(offer_id, pid)
            entries.append((prefix + imp_id.encode(), aimp_id.encode()))
    return entries


Read = Callable[[bytes], bytes | None]
"""A read of one key of one partition's store."""


@dataclass(frozen=True)
class PartitionLinks:
    """What a click is linked through in one partition: reads of the ``impressions``
    table's entries (by envelope key) and of its links index. Both safe on another
    thread than the writer's."""

    entry: Callable[[str], bytes | None]  # by envelope key
    index: Read


def linked_by_aimp_id(
    links: PartitionLinks, offer_id: int, pid: int, aimp_id: str, parts: IdParts
) -> Link | None:
    """The impression ``aimp_id`` (whose ``parts`` the seal gave), if it is one of
    ``offer_id`` by ``pid``."""
    try:
        impression = recorded_impression(links.entry(parts.envelope_key), aimp_id, parts.slot)
    except UnreadableEnvelope:
        # Only the worker writes the table; an entry it cannot read links nothing.
        return None
    if impression is None or (impression.offer_id, impression.pid) != (offer_id, pid):
        return None
    return Link(BY_AIMP_ID, aimp_id, impression.imp_id or None)


def linked_by_imp_id(links: PartitionLinks, offer_id: int, pid: int, imp_id: str) -> Link | None:
    """The latest impression of ``offer_id`` by ``pid`` carrying ``imp_id``."""
    aimp_id = links.index(imp_entry_key(offer_id, pid, imp_id))
    return None if aimp_id is None else Link(BY_IMP_ID, aimp_id.decode(), imp_id)
