"""A table store that keeps an index of its entries beside them: the ``impressions``
table's, whose index links clicks to impressions (app/attribution/links_store.py).

Each partition's database holds the table's entries in its default column family
and the index in the column family :data:`INDEX`. Every write of an entry writes
its index entries (``index_entries``, given by the subclass) in the same RocksDB
write batch, and every delete of an entry deletes those that still hold what it
gave them, whichever way the write comes:

- an agent's ``table[key] = ...`` (``Store._set``);
- an expiry sweep's ``del table[key]`` (``Store._del``);
- a changelog record applied in recovery or on a standby
  (``Store.apply_changelog_batch``, whose loop is written again here for that).

So the index never holds what the table does not, is rebuilt with the table from
its changelog (no topic or changelog of its own), and a SIGKILL leaves the two as
one. Faust's store has no hook for any of it: the three private methods are
overridden. Written for faust-streaming 0.15.3 and rocksdict 0.3.29
(app/compat/patches.py, TABLE_INDEX).

``IndexedStore.index_reads`` may be read from another thread (the links server's):
RocksDB reads are safe beside writes, and Faust never closes a database it drops
from ``_dbs`` (revoked partitions are only forgotten), so a reader holding one
never reads a closed one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import rocksdict
from faust.streams import current_event

from app.compat.rocksdb_store import BoundedStore

INDEX = "index"

IndexEntries = Callable[[bytes], list[tuple[bytes, bytes]]]
"""The index entries of one table entry's value."""
Read = Callable[[bytes], bytes | None]
"""A read of one index entry of one partition."""


class _Batch:
    """The writes of one partition: table entries with their index entries, each
    entry's in one RocksDB write batch."""

    def __init__(self, db: rocksdict.Rdict, index: Any, reader: Any, entries: IndexEntries) -> None:
        self.db = db
        self.index = index  # the column family's handle, for the batch
        self.reader = reader  # the column family, for reads
        self.entries = entries
        self.batch = rocksdict.WriteBatch(raw_mode=True)

    def put_entry(self, key: bytes, value: bytes) -> None:
        self.batch.put(key, value)
        for index_key, index_value in self.entries(value):
            self.batch.put(index_key, index_value, self.index)

    def delete_entry(self, key: bytes, value: bytes | None) -> None:
        """Delete the entry ``key`` holding ``value`` (None: not there) with the index
        entries that still hold what it gave them (a later entry may have taken one
        since: an ``imp_id`` reused keeps pointing at its latest impression)."""
        linked = [] if value is None else self.entries(value)
        if linked and not self.batch.is_empty():
            # The index is compared with what is stored, so what this batch holds so
            # far (whole entries, each with its index) is written first. Deletes are
            # rare (the expiry's), so the puts before them need no bookkeeping.
            self.write()
        self.batch.delete(key)
        for index_key, index_value in linked:
            if self.reader.get(index_key) == index_value:
                self.batch.delete(index_key, self.index)

    def write(self) -> None:
        self.db.write(self.batch)
        # rocksdict consumes a batch it wrote.
        self.batch = rocksdict.WriteBatch(raw_mode=True)


class IndexedStore(BoundedStore):
    """:class:`BoundedStore` with an index of its entries in each partition's database."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.index_of: dict[int, Any] = {}
        """Each open partition's index column family, for :meth:`index_reads`."""
        self._handles: dict[int, Any] = {}

    def index_entries(self, value: bytes) -> list[tuple[bytes, bytes]]:
        """The index entries of an entry holding ``value``: the subclass's to say."""
        raise NotImplementedError

    def index_reads(self, partition: int) -> Read | None:
        """Reads of ``partition``'s index, or None if this worker holds none; safe on
        another thread."""
        index = self.index_of.get(partition)
        return None if index is None else index.get

    def entry_reads(self, partition: int) -> Callable[[Any], bytes | None] | None:
        """Reads of ``partition``'s table entries by their table key (encoded as the
        table encodes it), or None if this worker holds none; safe on another thread."""
        db = self._dbs.get(partition)
        if db is None:
            return None
        encode, read = self._encode_key, db.get
        return lambda key: read(encode(key))

    def _open_for_partition(self, partition: int) -> rocksdict.Rdict:
        db: rocksdict.Rdict = super()._open_for_partition(partition)
        # rocksdict opens every column family a database has; a new one lacks it.
        if INDEX not in rocksdict.Rdict.list_cf(db.path()):
            db.create_column_family(INDEX, self.rocksdb_options.as_options())
        self._handles[partition] = db.get_column_family_handle(INDEX)
        self.index_of[partition] = db.get_column_family(INDEX)
        return db

    def _batch(self, partition: int) -> _Batch:
        db = self._db_for_partition(partition)
        # The column family opened once per partition: rocksdict's get_column_family
        # took 4 ms a call on the worker's databases (their options hold the shared
        # cache), which made the worker write a third of the impressions it wrote
        # without the index (bench.pipeline).
        return _Batch(db, self._handles[partition], self.index_of[partition], self.index_entries)

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
