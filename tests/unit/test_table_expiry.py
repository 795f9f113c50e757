"""The impressions table forgets envelopes past every view-through window
(agents/impressions_expiry.py, app/compat/table_expiry.py): on the worker's own
RocksDB store, partition by partition, with a tombstone each in its changelog."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agents.impressions_expiry import MARGIN_SECONDS, expiry_cutoff, longest_window, sweep_expired
from app.catalog.model import Advertiser, Catalog, Offer
from app.compat.table_expiry import keys_below, partitions_held
from app.ids import IdGenerator
from app.settings import Settings
from app.streams.worker import build_worker
from tests.ids import TEST_SEAL

NOW_MS = 1_800_000_000_000
HOUR_MS = 3_600_000
CATALOG = Catalog(
    advertisers={1: Advertiser(1, "A")},
    offers={
        5: Offer(id=5, title="Short", advertiser_id=1, view_through_window=3600),
        6: Offer(id=6, title="Long", advertiser_id=1, view_through_window=86_400),
    },
)


def test_the_cutoff_is_the_longest_window_and_the_margin_ago() -> None:
    assert longest_window(CATALOG) == 86_400
    assert longest_window(Catalog()) == 0
    ids = IdGenerator(TEST_SEAL)
    horizon_ms = (86_400 + MARGIN_SECONDS) * 1000
    cutoff = expiry_cutoff(CATALOG, NOW_MS)
    expired = ids.open_envelope(0, now_ms=NOW_MS - horizon_ms - 1).key
    kept = ids.open_envelope(0, now_ms=NOW_MS - horizon_ms).key
    assert expired < cutoff <= kept


@pytest.fixture
def table(tmp_path: Path) -> Any:
    """The impressions table of a worker as ``imptrack worker`` builds it, its
    RocksDB databases for partitions 0 and 1 open (nothing else is started)."""
    worker = build_worker(Settings.from_env({"IMPTRACK_HOME": str(tmp_path)}))
    table = worker.tables["impressions"]
    for partition in (0, 1):
        table.data._db_for_partition(partition)
    return table


def _put(table: Any, partition: int, at_ms: int) -> str:
    """An entry written straight into ``partition``'s database, its key encoded as
    the table's store encodes it."""
    key = IdGenerator(TEST_SEAL).open_envelope(partition, now_ms=at_ms).key
    table.data._dbs[partition][table.data._encode_key(key)] = b"entry"
    return key


def test_expired_envelopes_are_deleted_per_partition_and_the_rest_kept(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    horizon_ms = (86_400 + MARGIN_SECONDS) * 1000
    old = [_put(table, p, NOW_MS - horizon_ms - n * HOUR_MS - 1) for p in (0, 1) for n in range(3)]
    young = [_put(table, p, NOW_MS - horizon_ms + HOUR_MS) for p in (0, 1)]
    assert partitions_held(table) == [0, 1]
    assert keys_below(table, 0, expiry_cutoff(CATALOG, NOW_MS), 100) == sorted(old[:3])
    sent: list[tuple[int | None, bytes, Any]] = []

    def send_changelog(partition: int | None, key: Any, value: Any, **_: Any) -> Any:
        sent.append((partition, key, value))
        return _Sent(partition)

    monkeypatch.setattr(table, "send_changelog", send_changelog)
    assert sweep_expired(table, CATALOG, NOW_MS) == 6
    for partition in (0, 1):
        left = [table.data._decode_key(k) for k in table.data._dbs[partition].keys()]  # noqa: SIM118
        assert left == [young[partition]]
    # One tombstone each, on the changelog partition of the entry's own partition.
    assert sorted(sent) == sorted(
        (p, k, None) for p, k in zip([0, 0, 0, 1, 1, 1], old, strict=True)
    )
    assert sweep_expired(table, CATALOG, NOW_MS) == 0


class _Sent:
    """What Faust's table reads of a changelog send's future."""

    def __init__(self, partition: int | None) -> None:
        self.message = type("M", (), {"partition": partition})()


def test_an_envelope_entry_is_stored_and_read_as_its_bytes(table: Any) -> None:
    """The impressions table's store keeps an entry as the envelope's own bytes (the
    changelog holds them as the worker wrote them), not as JSON of them."""
    assert table.data._encode_value(b"\x01[[]]") == b"\x01[[]]"
    assert table.data._decode_value(b"\x01[[]]") == b"\x01[[]]"
