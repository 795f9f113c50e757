"""The settings the patches read, given once per process by ``install()``.

A patch never reads the environment itself: a process is built from its
``Settings``, and a patched path taken before ``install()`` is refused rather than
run on defaults.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings


@dataclass(frozen=True)
class PatchSettings:
    processing_guarantee: str  # the worker's, which decides what the forwarder reads too
    fetch_wait_ms: int  # see app.compat.faust_consumer.WorkerConsumerThread
    fetch_min_bytes: int  # likewise
    table_memory_mb: int  # see app.compat.rocksdb_store

    @classmethod
    def of(cls, settings: Settings) -> PatchSettings:
        return cls(
            processing_guarantee=settings.processing_guarantee,
            fetch_wait_ms=settings.worker_fetch_wait_ms,
            fetch_min_bytes=settings.worker_fetch_min_bytes,
            table_memory_mb=settings.worker_table_memory_mb,
        )

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"


_kept: PatchSettings | None = None


def keep(patch_settings: PatchSettings) -> None:
    """Keep ``patch_settings`` for the patches; the same again is harmless. Other
    settings are refused: the tables' shared memory budget, once made, cannot follow."""
    global _kept
    if _kept is not None and _kept != patch_settings:
        raise RuntimeError(
            f"app.compat.install() was already called with other settings ({_kept}); "
            "a process installs its patches once, at start"
        )
    _kept = patch_settings


def installed_settings() -> PatchSettings:
    if _kept is None:
        raise RuntimeError(
            "app.compat.install(settings) was not called: each process (edge, worker, "
            "forwarder, exporter) calls it once at start, before it uses Faust, aiokafka "
            "or RocksDB"
        )
    return _kept
