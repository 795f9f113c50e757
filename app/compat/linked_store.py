"""The ``impressions`` table's store, which keeps the clicks' links index beside it.

Each partition's database holds the table's entries (an envelope of recorded
impressions by envelope key) in its default column family and their links index
(app.attribution.click_links) in the column family :data:`LINKS`. Every write of an
entry writes its index entries in the same RocksDB write batch, and every delete of
an entry deletes them, whichever way the write comes:

- the impressions agent's ``table[key] = ...`` (``Store._set``);
- the expiry sweep's ``del table[key]`` (``Store._del``);
- a changelog record applied in recovery or on a standby
  (``Store.apply_changelog_batch``, whose loop is written again here for that).

So the index never holds what the table does not, is rebuilt with the table from
its changelog (no topic or changelog of its own), and a SIGKILL leaves the two as
one. Faust's store has no hook for any of it: the three private methods are
overridden. Written for faust-streaming 0.15.3 and rocksdict 0.3.29
(app/compat/patches.py, LINKS_INDEX).

A :class:`LinksReader` is read from the links server's thread
(app/streams/links_server.py): RocksDB reads are safe beside writes, and Faust
never closes a database it drops from ``_dbs`` (revoked partitions are only
forgotten), so a reader holding one never reads a closed one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import rocksdict
from faust.stores import STORES
from faust.streams import current_event

from app.attribution.click_links import Read, link_entries
from app.compat.rocksdb_store import STORE_SCHEME, BoundedStore
from app.events.envelopes import UnreadableEnvelope
from app.events.kinds import RECORDED_ENVELOPE

LINKS = "links"
LINKED_STORE_SCHEME = f"{STORE_SCHEME}-linked"


class _Batch:
    """One write batch of one partition: table entries and their index entries, with
    the index values it has set so far (a later delete compares against them)."""

    def __init__(self, db: rocksdict.Rdict, links: Any) -> None:
        self.db = db
        self.links = links  # the column family's handle
        self.reader = db.get_column_family(LINKS)
        self.batch = rocksdict.WriteBatch(raw_mode=True)
        self.pending: dict[bytes, bytes | None] = {}

    def read(self, key: bytes) -> bytes | None:
        return self.pending[key] if key in self.pending else self.reader.get(key)

    def put_entry(self, key: bytes, value: bytes) -> None:
        self.batch.put(key, value)
        for link_key, link_value in _entries(value):
            self.batch.put(link_key, link_value, self.links)
            self.pending[link_key] = link_value

    def delete_entry(self, key: bytes, value: bytes | None) -> None:
        """Delete the entry ``key`` holding ``value`` (None: not there) with its index
        entries; an ``imp_id`` taken since by a later impression keeps its entry."""
        self.batch.delete(key)
        if value is None:
            return
        for link_key, link_value in _entries(value):
            if link_key.startswith(b"a") or self.read(link_key) == link_value:
                self.batch.delete(link_key, self.links)
                self.pending[link_key] = None

    def write(self) -> None:
        self.db.write(self.batch)


def _entries(value: bytes) -> list[tuple[bytes, bytes]]:
    try:
        return list(link_entries(RECORDED_ENVELOPE.decode(value)))
    except (UnreadableEnvelope, KeyError, AttributeError, TypeError):
        # Not an envelope of recorded impressions: nothing to link to (the agent
        # writes only those; the table's own tests write other values).
        return []


class LinksReader:
    """Reads of the links index of the partitions this worker holds."""

    def __init__(self, store: LinkedImpressionsStore) -> None:
        self._store = store

    def partition(self, partition: int) -> Read | None:
        """Reads of ``partition``'s index, or None if this worker holds none."""
        links = self._store.links_of.get(partition)
        return None if links is None else links.get


class LinkedImpressionsStore(BoundedStore):
    """:class:`BoundedStore` with the links index in each partition's database."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.links_of: dict[int, Any] = {}
        """Each open partition's index column family, for :class:`LinksReader`."""
        self._handles: dict[int, Any] = {}

    def _open_for_partition(self, partition: int) -> rocksdict.Rdict:
        db: rocksdict.Rdict = super()._open_for_partition(partition)
        # rocksdict opens every column family a database has; a new one lacks it.
        if LINKS not in rocksdict.Rdict.list_cf(db.path()):
            db.create_column_family(LINKS, self.rocksdb_options.as_options())
        self._handles[partition] = db.get_column_family_handle(LINKS)
        self.links_of[partition] = db.get_column_family(LINKS)
        return db

    def _batch(self, partition: int) -> _Batch:
        db = self._db_for_partition(partition)
        return _Batch(db, self._handles[partition])

    def _set(self, key: bytes, value: bytes | None) -> None:
        event = current_event()
        assert event is not None
        partition = event.message.partition
        batch = self._batch(partition)
        self._key_index[key] = partition
        if value is None:
            batch.delete_entry(key, batch.db.get(key))
        else:
            batch.put_entry(key, value)
        batch.write()

    def _del(self, key: bytes) -> None:
        # Faust's _dbs_for_key: the partition the key was written in, else every one.
        known = self._key_index.get(key)
        for partition in [known] if known is not None and known in self._dbs else list(self._dbs):
            batch = self._batch(partition)
            value = batch.db.get(key)
            if value is not None:
                batch.delete_entry(key, value)
                batch.write()

    def apply_changelog_batch(
        self,
        batch: Iterable[Any],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        batches: dict[int, _Batch] = {}
        entries: defaultdict[int, dict[bytes, bytes | None]] = defaultdict(dict)
        offsets: dict[Any, int] = {}
        for event in batch:
            message = event.message
            offsets[message.tp] = max(message.offset, offsets.get(message.tp, -1))
            partition = message.partition
            if partition not in batches:
                batches[partition] = self._batch(partition)
            writes, written = batches[partition], entries[partition]
            if message.value is None:
                before = (
                    written[message.key] if message.key in written else writes.db.get(message.key)
                )
                writes.delete_entry(message.key, before)
                written[message.key] = None
            else:
                writes.put_entry(message.key, message.value)
                written[message.key] = message.value
        for writes in batches.values():
            writes.write()
        for tp, offset in offsets.items():
            self.set_persisted_offset(tp, offset)


def register_linked_store() -> None:
    """Register :class:`LinkedImpressionsStore` under :data:`LINKED_STORE_SCHEME`."""
    STORES.aliases[LINKED_STORE_SCHEME] = (
        f"{LinkedImpressionsStore.__module__}:{LinkedImpressionsStore.__qualname__}"
    )
