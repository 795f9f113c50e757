"""How much memory the worker's tables may hold in RocksDB: one budget for all.

Faust opens one RocksDB per table and partition, each with a block cache and
write buffers of its own: three tables on four partitions are twelve databases. A
bound per database still let the worker grow for hours: the soak (`make soak`) saw
the tables written rarely (clicks, conversions) fill their memtables slowly, and
index and filter blocks of every file kept outside any cache. So every table of
the process shares one LRU cache of ``WORKER_TABLE_MEMORY_MB``:

- data blocks, and index and filter blocks (charged to the cache, not held beside
  it), are cached in it;
- the memtables of all twelve databases are charged to it too, through one write
  buffer manager: once all of them together hold half the budget, the next write
  sets off a flush of the memtable of the database it writes to.

RocksDB's memory in the worker is then this one figure, however many partitions
it holds. Faust's own store builds its options from a table's ``options`` mapping
and knows neither a shared cache nor a write buffer manager, so the tables use the
store class below (registered under :data:`STORE_SCHEME` by ``install()``). Written
for faust-streaming 0.15.3 and rocksdict 0.3.29 (app/compat/patches.py).
"""

from __future__ import annotations

import contextlib
from functools import cache
from pathlib import Path
from typing import Any

import rocksdict
from faust.stores import STORES
from faust.stores import rocksdb as faust_rocksdb

from app.compat.installed import installed_settings

MiB = 1024 * 1024
STORE_SCHEME = "imptrack-rocksdb"
ARENA_BLOCK_BYTES = 64 * 1024
WRITE_BUFFERS_SHARE = 0.5
"""Of the budget, what memtables may take before a write sets off a flush."""


def rocksdb_options() -> dict[str, Any]:
    """A table's store options. A new dict per table: Faust's store takes options out
    of the mapping it is given. A memtable is flushed at 4 MB (or earlier when the
    budget is reached); 2 per database so writes go on while one is flushed."""
    return {
        "write_buffer_size": 4 * MiB,
        "max_write_buffer_number": 2,
        "target_file_size_base": 16 * MiB,
    }


class TableMemory:
    """The cache and write buffer manager every table of this process shares."""

    def __init__(self, budget_mb: int) -> None:
        self.budget_bytes = budget_mb * MiB
        self.cache = rocksdict.Cache(self.budget_bytes)
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            int(self.budget_bytes * WRITE_BUFFERS_SHARE),
            # Writers never stall on it: the impressions agent must not stop because a
            # flush is slow; a memtable over the budget is flushed in the background.
            False,
            self.cache,
        )

    def used_bytes(self) -> int:
        """What the cache holds now, memtables included."""
        return int(self.cache.get_usage())


@cache
def table_memory() -> TableMemory:
    """This process's one :class:`TableMemory`, of ``WORKER_TABLE_MEMORY_MB``."""
    return TableMemory(installed_settings().table_memory_mb)


class BoundedRocksDBOptions(faust_rocksdb.RocksDBOptions):
    """Faust's options for one database, with the process's shared cache and write
    buffer manager in place of a cache of its own."""

    def as_options(self) -> Any:
        options = super().as_options()
        memory = table_memory()
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(self.bloom_filter_size, True)
        table.set_index_type(rocksdict.BlockBasedIndexType.binary_search())
        table.set_block_cache(memory.cache)
        # Index and filter blocks count against the budget instead of growing with
        # every file; the newest files' stay pinned, lookups of new keys need them.
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(memory.write_buffers)
        # Memory is charged to the budget a block at a time; RocksDB's default block
        # (512 KB for a 4 MB memtable) would make twelve nearly empty memtables
        # weigh 6 MB and flush files of a few kilobytes under a small budget.
        options.set_arena_block_size(ARENA_BLOCK_BYTES)
        return options


class BoundedStore(faust_rocksdb.Store):
    """Faust's RocksDB store (rocksdict driver), opening its databases with
    :class:`BoundedRocksDBOptions`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not self.use_rocksdict:
            raise RuntimeError("the worker's tables need the rocksdict driver")
        # Faust took its keys out of ``self.options`` already; what is left is ours.
        self.rocksdb_options = BoundedRocksDBOptions(**(self.options or {}), use_rocksdict=True)


def register_store() -> None:
    """Register :class:`BoundedStore` with Faust under :data:`STORE_SCHEME` (``install()``)."""
    STORES.aliases[STORE_SCHEME] = f"{BoundedStore.__module__}:{BoundedStore.__qualname__}"


def store_url() -> str:
    """The store URL for ``faust.App(store=...)``."""
    # Faust knows the scheme only once install() registered it.
    installed_settings()
    return f"{STORE_SCHEME}://"


def store_figures(store: Any) -> tuple[int, int] | None:
    """A Faust RocksDB store's estimated keys and bytes on disk, over the partitions
    it has open here; None for any other store (the tests' memory stores).

    Reads faust-streaming 0.15.3's ``Store._dbs`` (the open database of each
    partition) and ``partition_path``: Faust has no public figure of a store's size.
    The keys are RocksDB's estimate, and count a table's index entries too
    (app/compat/indexed_store.py)."""
    dbs = getattr(store, "_dbs", None)
    if not isinstance(store, faust_rocksdb.Store) or not isinstance(dbs, dict):
        return None
    keys = size = 0
    for partition, db in list(dbs.items()):
        keys += int(db.property_int_value("rocksdb.estimate-num-keys") or 0)
        for path in Path(store.partition_path(partition)).rglob("*"):
            with contextlib.suppress(OSError):  # a file compacted away meanwhile
                if path.is_file():
                    size += path.stat().st_size
    return keys, size
