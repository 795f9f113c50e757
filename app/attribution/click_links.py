"""Finding the impression a click followed: the links index, kept on disk beside the
``impressions`` table.

Each recorded impression has two entries in its partition's index (the worker's
RocksDB, app/attribution/links_store.py), written in the same write as its envelope's
table entry and deleted with it once past every view-through window:

- ``a<aimp_id>`` → ``<offer_id>:<pid>:<imp_id>``: lets a click naming an ``aimp_id``
  be linked only to an impression of the same offer and affiliate, and gives it the
  affiliate's ``imp_id`` of that impression (empty when it had none). The
  ``aimp_id`` names its partition (app.ids).
- ``i<offer_id>:<pid>:<imp_id>`` → ``aimp_id``: the affiliate's own impression ID,
  for clicks that carry only that. The edge places every impression with an
  ``imp_id`` on the partition :func:`imp_id_partition` gives, so a click finds the
  entry's partition without a lookup. An ``imp_id`` reused by the affiliate points
  at its latest impression.

The edge asks the worker holding the partition (app/edge/links.py), which answers
from the index on a thread of its own (app/streams/links_server.py), so the
redirect does not wait behind the agents. What one partition's index holds is
bounded like the table: impressions/s x (longest view-through window + margin)
entries of each kind at most (agents/impressions_expiry.py).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from app.events.envelopes import Envelope

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


def aimp_entry_key(aimp_id: str) -> bytes:
    return b"a" + aimp_id.encode()


def imp_entry_key(offer_id: int, pid: int, imp_id: str) -> bytes:
    return f"i{offer_id}:{pid}:{imp_id}".encode()


def link_entries(recorded: Envelope) -> Iterator[tuple[bytes, bytes]]:
    """The index entries of an envelope of recorded impressions."""
    column = recorded.columns
    for aimp_id, offer_id, pid, imp_id in zip(
        column["aimp_id"], column["offer_id"], column["pid"], column["imp_id"], strict=True
    ):
        yield aimp_entry_key(aimp_id), f"{offer_id}:{pid}:{imp_id or ''}".encode()
        if imp_id:
            yield imp_entry_key(offer_id, pid, imp_id), aimp_id.encode()


Read = Callable[[bytes], bytes | None]
"""A read of one index entry of one partition."""


def linked_by_aimp_id(read: Read, offer_id: int, pid: int, aimp_id: str) -> Link | None:
    """The impression ``aimp_id``, if it is one of ``offer_id`` by ``pid``."""
    owner = read(aimp_entry_key(aimp_id))
    if owner is None:
        return None
    # offer:pid, then the imp_id (which may hold colons itself).
    offer, found_pid, imp_id = owner.decode().split(":", 2)
    if (offer, found_pid) != (str(offer_id), str(pid)):
        return None
    return Link(BY_AIMP_ID, aimp_id, imp_id or None)


def linked_by_imp_id(read: Read, offer_id: int, pid: int, imp_id: str) -> Link | None:
    """The latest impression of ``offer_id`` by ``pid`` carrying ``imp_id``."""
    aimp_id = read(imp_entry_key(offer_id, pid, imp_id))
    return None if aimp_id is None else Link(BY_IMP_ID, aimp_id.decode(), imp_id)
