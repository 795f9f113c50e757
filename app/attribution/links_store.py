"""The ``impressions`` table's store: its index is the clicks' links index
(app.attribution.click_links), derived from each entry's recorded impressions
(app/compat/indexed_store.py keeps it with the entries)."""

from __future__ import annotations

from faust.stores import STORES

from app.attribution.click_links import PartitionLinks, link_entries
from app.compat.indexed_store import IndexedStore
from app.compat.rocksdb_store import STORE_SCHEME
from app.events.envelopes import UnreadableEnvelope
from app.events.kinds import RECORDED_ENVELOPE

LINKED_STORE_SCHEME = f"{STORE_SCHEME}-linked"


class LinkedImpressionsStore(IndexedStore):
    def index_entries(self, value: bytes) -> list[tuple[bytes, bytes]]:
        try:
            return link_entries(RECORDED_ENVELOPE.decode(value))
        except UnreadableEnvelope:
            # Not an envelope of recorded impressions: nothing a click could follow
            # (the impressions agent writes only those).
            return []

    def links(self, partition: int) -> PartitionLinks | None:
        """What clicks are linked through in ``partition``, or None if this worker
        holds none of it; safe on another thread (the links server's)."""
        entry, index = self.entry_reads(partition), self.index_reads(partition)
        return None if entry is None or index is None else PartitionLinks(entry, index)


def register_linked_store() -> None:
    """Register :class:`LinkedImpressionsStore` with Faust under :data:`LINKED_STORE_SCHEME`."""
    STORES.aliases[LINKED_STORE_SCHEME] = (
        f"{LinkedImpressionsStore.__module__}:{LinkedImpressionsStore.__qualname__}"
    )
