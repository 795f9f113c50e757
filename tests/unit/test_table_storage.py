"""Every worker table opens its RocksDB with bounded memory (tables/storage.py)."""

from __future__ import annotations

from tables.clicks import clicks_table
from tables.conversions import conversions_table
from tables.impressions import impressions_table
from tables.storage import MiB


def test_every_table_bounds_its_write_buffers_and_cache() -> None:
    for table in (impressions_table, clicks_table, conversions_table):
        options = table.options
        assert options is not None
        assert options["write_buffer_size"] * options["max_write_buffer_number"] <= 8 * MiB
        assert options["block_cache_size"] <= 16 * MiB
    # Each its own mapping: Faust's store takes entries out of the one it is given.
    assert impressions_table.options is not clicks_table.options
