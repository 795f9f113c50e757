"""Every patch of a library's internals, in one place (docs/ARCHITECTURE.md,
"Library patches"); each is declared in :mod:`app.compat.patches`."""

from __future__ import annotations

from app.compat.installed import PatchSettings, keep
from app.compat.patches import PATCHES, check_versions
from app.settings import Settings

__all__ = ["install"]


def install(settings: Settings) -> None:
    """Ready the patches for this process; each process calls it once at start.

    Refuses (:class:`~app.exceptions.LibraryMismatch`) a patched library at another
    version than its patches were written for, keeps the settings the patches read,
    and registers the worker's table store with Faust. Called again with the same
    settings, it changes nothing.
    """
    check_versions(PATCHES)
    keep(PatchSettings.of(settings))
    # Imported once the versions are known: at another version, what this module
    # imports from Faust may be gone, and the check above is the clearer error.
    from app.compat.rocksdb_store import register_store

    register_store()
