"""The clicks' links index lives beside the impressions table, on the worker's own
RocksDB (app/compat/indexed_store.py, app/attribution/links_store.py): written with
each envelope entry, deleted with it, rebuilt with it from the changelog, and still
there after a restart."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from faust.types import TP

from app.attribution.click_links import (
    BY_AIMP_ID,
    BY_IMP_ID,
    Link,
    imp_entry_key,
    linked_by_aimp_id,
    linked_by_imp_id,
)
from app.attribution.links_store import LinkedImpressionsStore
from app.compat.table_expiry import delete_in_partition
from app.compat.table_writes import write_in_event_partition
from app.events import kinds
from app.ids import IdGenerator, IdParts
from app.settings import Settings
from app.streams.worker import build_worker
from tests.ids import TEST_SEAL

NOW_MS = 1_800_000_000_000
CHANGELOG = TP("imptrack-worker-impressions-changelog", 0)


def _worker_table(home: Path) -> Any:
    worker = build_worker(Settings.from_env({"IMPTRACK_HOME": str(home)}))
    return worker.tables["impressions"]


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """The impressions table of a worker as ``imptrack worker`` builds it, its
    changelog sends kept out of Kafka (nothing is started)."""
    table = _worker_table(tmp_path)
    monkeypatch.setattr(table, "send_changelog", lambda partition, *_, **__: _Sent(partition))
    return table


class _Sent:
    """What Faust's table reads of a changelog send's future."""

    def __init__(self, partition: int | None) -> None:
        self.message = SimpleNamespace(partition=partition)


class _Event:
    """What Faust reads of the current event to place a table write."""

    def __init__(self, partition: int) -> None:
        topic = kinds.IMPRESSIONS.topic
        self.message = SimpleNamespace(tp=TP(topic, partition), topic=topic, partition=partition)


def _envelope(
    partition: int, imp_ids: list[str | None], at_ms: int = NOW_MS
) -> tuple[str, bytes, list[str]]:
    """An envelope key, its recorded impressions (offer 7 by affiliate 3) and their aimp_ids."""
    ids = IdGenerator(TEST_SEAL).open_envelope(partition, now_ms=at_ms)
    aimp_ids = [ids.id(slot) for slot in range(len(imp_ids))]
    rows = [
        {"aimp_id": a, "offer_id": 7, "pid": 3, "imp_id": i}
        for a, i in zip(aimp_ids, imp_ids, strict=True)
    ]
    return ids.key, kinds.RECORDED_ENVELOPE.current.encode_rows(rows), aimp_ids


def _links(
    table: Any, partition: int, aimp_id: str | None = None, imp_id: str | None = None
) -> Link | None:
    links = table.data.links(partition)
    assert links is not None
    if aimp_id is not None:
        return linked_by_aimp_id(links, 7, 3, aimp_id, _parts(aimp_id))
    assert imp_id is not None
    return linked_by_imp_id(links, 7, 3, imp_id)


def _parts(aimp_id: str) -> IdParts:
    parts = TEST_SEAL.parts(aimp_id)
    assert parts is not None
    return parts


def test_the_impressions_table_is_the_one_with_the_index(table: Any) -> None:
    assert isinstance(table.data, LinkedImpressionsStore)
    assert table.data.links(0) is None  # not held here yet
    for name in ("clicks", "conversions"):
        assert not isinstance(table.app.tables[name].data, LinkedImpressionsStore)


def test_an_entry_written_is_linked_by_aimp_id_and_imp_id(table: Any) -> None:
    """By aimp_id through the entry itself (the ID names its envelope and slot), by
    imp_id through the index: one index entry for each impression with an imp_id."""
    key, value, (first, second, third) = _envelope(1, ["imp-a", None, "x:y:z"])
    write_in_event_partition(_Event(1), table, key, value)

    assert _links(table, 1, aimp_id=first) == Link(BY_AIMP_ID, first, "imp-a")
    assert _links(table, 1, aimp_id=second) == Link(BY_AIMP_ID, second, None)
    # An imp_id may hold colons.
    assert _links(table, 1, aimp_id=third) == Link(BY_AIMP_ID, third, "x:y:z")
    assert _links(table, 1, imp_id="x:y:z") == Link(BY_IMP_ID, third, "x:y:z")
    # Only for its own offer and affiliate.
    links = table.data.links(1)
    assert links is not None
    assert linked_by_aimp_id(links, 8, 3, first, _parts(first)) is None
    assert linked_by_imp_id(links, 7, 4, "imp-a") is None
    # An ID of this envelope's key and another slot: the whole ID is compared.
    other = IdGenerator(TEST_SEAL).open_envelope(1, now_ms=NOW_MS).id(3)
    assert _links(table, 1, aimp_id=other) is None
    # The table itself holds the envelope as it was, and nothing of the index.
    assert table[key] == value
    assert list(table.data._dbs[1].keys()) == [table.data._encode_key(key)]
    index = table.data.index_of[1]
    assert sorted(index.keys()) == [imp_entry_key(7, 3, "imp-a"), imp_entry_key(7, 3, "x:y:z")]


def test_a_deleted_entry_takes_its_links_but_not_an_imp_id_taken_since(table: Any) -> None:
    old_key, old_value, (old_reused, old_alone) = _envelope(0, ["reused", "alone"], NOW_MS - 10)
    new_key, new_value, (new_reused,) = _envelope(0, ["reused"])
    write_in_event_partition(_Event(0), table, old_key, old_value)
    write_in_event_partition(_Event(0), table, new_key, new_value)
    # An imp_id reused by the affiliate points at its latest impression.
    assert _links(table, 0, imp_id="reused") == Link(BY_IMP_ID, new_reused, "reused")

    delete_in_partition(table, kinds.IMPRESSIONS.topic, 0, old_key)

    assert old_key not in table
    assert _links(table, 0, aimp_id=old_reused) is None
    assert _links(table, 0, aimp_id=old_alone) is None
    assert _links(table, 0, imp_id="alone") is None
    assert _links(table, 0, imp_id="reused") == Link(BY_IMP_ID, new_reused, "reused")
    assert _links(table, 0, aimp_id=new_reused) is not None


def _changelog(offset: int, key: str, value: bytes | None, table: Any) -> Any:
    message = SimpleNamespace(
        tp=CHANGELOG,
        partition=CHANGELOG.partition,
        offset=offset,
        key=table.data._encode_key(key),
        value=value,
    )
    return SimpleNamespace(message=message)


def test_the_changelog_rebuilds_the_index_with_its_tombstones(table: Any) -> None:
    """Recovery applies puts and tombstones in one batch; an entry put and expired in
    the same batch leaves no link, and a later impression's imp_id keeps its own."""
    expired_key, expired_value, (expired,) = _envelope(0, ["reused"], NOW_MS - 10)
    kept_key, kept_value, (kept,) = _envelope(0, ["reused"])
    batch = [
        _changelog(10, expired_key, expired_value, table),
        _changelog(11, kept_key, kept_value, table),
        _changelog(12, expired_key, None, table),
    ]
    table.data.apply_changelog_batch(batch, lambda k: k, lambda v: v)

    assert table.data.persisted_offset(CHANGELOG) == 12
    assert _links(table, 0, aimp_id=expired) is None
    assert _links(table, 0, imp_id="reused") == Link(BY_IMP_ID, kept, "reused")
    # A tombstone of an entry put by an earlier batch takes its links too.
    table.data.apply_changelog_batch(
        [_changelog(13, kept_key, None, table)], lambda k: k, lambda v: v
    )
    assert _links(table, 0, aimp_id=kept) is None
    assert _links(table, 0, imp_id="reused") is None


def test_the_index_outlives_a_restart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The column family is opened again with the database: a worker restarted with
    its local state links clicks at once."""
    first = _worker_table(tmp_path)
    monkeypatch.setattr(first, "send_changelog", lambda partition, *_, **__: _Sent(partition))
    key, value, (aimp_id,) = _envelope(2, ["kept"])
    write_in_event_partition(_Event(2), first, key, value)
    # As a process that stops would: nothing of it holds the database any more.
    first.data.index_of.clear()
    first.data._handles.clear()
    first.data._dbs.pop(2).close()

    again = _worker_table(tmp_path)
    again.data._db_for_partition(2)
    assert _links(again, 2, imp_id="kept") == Link(BY_IMP_ID, aimp_id, "kept")
