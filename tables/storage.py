"""How much memory each table's RocksDB may hold.

Faust opens one RocksDB per table and partition with its own defaults: three 64 MB
write buffers and a 2 GB block cache each. The worker holds three tables on four
partitions, so that is twelve databases free to grow to gigabytes; the soak
(`make soak`) saw the worker's memory climb 4 MB a minute with the write buffers
filling and no flush in ten minutes. These bound each database to 2 x 4 MB of
write buffers and a 16 MB cache, about 300 MB at most for twelve; a 4 MB buffer is
flushed every minute or two at the rates the benchmarks reach, which costs the
pipeline nothing measurable (its work per impression is far above a flush's).
"""

from __future__ import annotations

from typing import Any

MiB = 1024 * 1024


def rocksdb_options() -> dict[str, Any]:
    """A table's store options. A new dict per table: Faust's store takes options out
    of the mapping it is given."""
    return {
        "write_buffer_size": 4 * MiB,
        "max_write_buffer_number": 2,
        "target_file_size_base": 16 * MiB,
        "block_cache_size": 16 * MiB,
        "block_cache_compressed_size": 0,
    }
