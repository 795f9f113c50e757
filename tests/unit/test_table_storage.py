"""The worker's tables keep RocksDB within one memory budget (app/compat/rocksdb_store.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
import rocksdict

from app.compat import rocksdb_store as storage
from app.compat.rocksdb_store import (
    WRITE_BUFFERS_SHARE,
    BoundedRocksDBOptions,
    BoundedStore,
    MiB,
    TableMemory,
)
from app.events import kinds
from app.settings import Settings
from app.streams.worker import build_worker

SLACK = 1.25  # how far over its budget the (not strict) cache is let go here


@pytest.fixture
def worker(tmp_path: Path) -> Any:
    """The worker's Faust app as ``imptrack worker`` builds it (nothing is started)."""
    return build_worker(Settings.from_env({"IMPTRACK_HOME": str(tmp_path)}))


def test_every_table_is_stored_with_the_shared_budget(worker: Any) -> None:
    assert worker.conf.store.scheme == storage.STORE_SCHEME
    tables = [worker.tables[name] for name in kinds.WORKER_TABLES]
    for table in tables:
        store = table.data
        assert isinstance(store, BoundedStore), table.name
        assert isinstance(store.rocksdb_options, BoundedRocksDBOptions)
        # Each table its own options mapping: Faust's store takes entries out of it.
        assert store.rocksdb_options.write_buffer_size == 4 * MiB
    assert tables[0].options is not tables[1].options


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch) -> TableMemory:
    """A budget of 8 MB, shared like the worker's, for the databases of one test."""
    shared = TableMemory(8)
    monkeypatch.setattr(storage, "table_memory", lambda: shared)
    return shared


def _open(path: Path) -> rocksdict.Rdict:
    options = BoundedRocksDBOptions(**storage.rocksdb_options(), use_rocksdict=True)
    return options.open(path)


def _sst_files(path: Path) -> int:
    return sum(1 for name in os.listdir(path) if name.endswith(".sst"))


def test_memtables_of_all_databases_are_flushed_within_the_budget(
    tmp_path: Path, memory: TableMemory
) -> None:
    # Six databases written alike: each memtable stays under its own 4 MB, so only
    # the shared budget (half of 8 MB for memtables) can make them flush.
    dbs = [_open(tmp_path / f"db{n}") for n in range(6)]
    value = os.urandom(300)
    try:
        for key in range(12_000):
            for db in dbs:
                db[key.to_bytes(8, "big")] = value
        written = 12_000 * 6 * 300
        assert written > 20 * MiB
        # Writers do not wait for flushes (allow_stall off), so on a loaded machine the
        # memtables may be over their share for a moment. The budget is looked at on
        # each write, which then sets off a flush: the next writes bring them back.
        share = int(WRITE_BUFFERS_SHARE * memory.budget_bytes)
        deadline = time.monotonic() + 30
        while memory.write_buffers.get_usage() > share and time.monotonic() < deadline:
            for db in dbs:
                db[b"tick"] = value
            time.sleep(0.05)
        assert memory.write_buffers.get_usage() <= share
        # Memtables are charged to the cache: it holds them, and stays about in the
        # budget (its limit is not strict: pinned blocks may take it a little over).
        assert 0 < memory.used_bytes() <= SLACK * memory.budget_bytes
        for db in dbs:
            db.flush_wal(True)
        assert sum(_sst_files(tmp_path / f"db{n}") for n in range(6)) >= 3
        # Nothing written is lost by the early flushes.
        for db in dbs:
            assert db[(11_999).to_bytes(8, "big")] == value
            assert db[(0).to_bytes(8, "big")] == value
    finally:
        for db in dbs:
            db.close()


def test_reads_cache_blocks_in_the_shared_cache_only(tmp_path: Path, memory: TableMemory) -> None:
    db = _open(tmp_path / "db")
    value = os.urandom(300)
    try:
        for key in range(40_000):
            db[key.to_bytes(8, "big")] = value
        db.flush(True)
        for key in range(0, 40_000, 7):
            assert db[key.to_bytes(8, "big")] == value
        assert memory.used_bytes() <= SLACK * memory.budget_bytes
    finally:
        db.close()


def test_every_worker_table_has_its_changelog_created_up_front(worker: Any) -> None:
    """`imptrack up` creates each table's changelog before the worker joins its group:
    one the worker creates itself can be missing from the metadata at the join, and
    its partitions then go unassigned for minutes (app/events/kinds.py)."""
    declared = {table.changelog_topic.get_topic_name() for table in worker.tables.values()}
    assert set(worker.tables) == set(kinds.WORKER_TABLES)
    assert declared == set(kinds.CHANGELOG_TOPICS)
    assert worker.conf.id == kinds.WORKER_APP_ID
