"""Expiring the impressions table: an entry lives as long as a click or postback may
still name one of its impressions.

No offer lets a postback follow an impression by more than its view-through
window, so an envelope's entry is deleted once it is older than the longest window
in the catalog plus :data:`MARGIN_SECONDS` (for a window lengthened since, and for
clocks). The table on disk then holds at most

    (impressions/s) x (longest view-through window + margin) impressions,

in (impressions/s x (window + margin)) / (impressions per envelope) entries, and a
restart rebuilds no more than that from the changelog, whose tombstones compaction
removes.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import faust

from app.catalog.current import CatalogView
from app.catalog.model import Catalog
from app.compat.table_expiry import delete_in_partition, keys_below, partitions_held
from app.events import kinds
from app.ids import EPOCH_MS

log = logging.getLogger("imptrack.impressions")

MARGIN_SECONDS = 3600
SWEEP_SECONDS = 30.0
SWEEP_LIMIT = 20_000
"""Entries deleted per partition and sweep, so one sweep after a long stop does not
hold the worker's loop for long; the next sweep goes on."""


def longest_window(catalog: Catalog) -> int:
    """The longest view-through window of any offer, in seconds (0 without offers)."""
    return max((offer.view_through_window for offer in catalog.offers.values()), default=0)


def expiry_cutoff(catalog: Catalog, now_ms: int) -> str:
    """Envelope keys below this are expired (keys begin with their 11-hex-digit
    millisecond, app.ids.envelope_key, and sort by it)."""
    horizon_ms = (longest_window(catalog) + MARGIN_SECONDS) * 1000
    return f"{max(0, now_ms - horizon_ms - EPOCH_MS):011x}"


def sweep_expired(table: Any, catalog: Catalog, now_ms: int) -> int:
    """Delete the expired entries of every partition this worker holds; how many."""
    below = expiry_cutoff(catalog, now_ms)
    deleted = 0
    for partition in partitions_held(table):
        for key in keys_below(table, partition, below, SWEEP_LIMIT):
            delete_in_partition(table, kinds.IMPRESSIONS.topic, partition, key)
            deleted += 1
    return deleted


def expire_impressions(app: faust.App, table: Any, catalog: CatalogView) -> Any:
    """Declare the sweep on ``app``: every worker sweeps the partitions it holds."""

    async def sweep() -> None:
        if not catalog.ready.is_set():
            return
        now_ms = time.time_ns() // 1_000_000
        deleted = sweep_expired(table, catalog.catalog_at(now_ms), now_ms)
        if deleted:
            log.info("expired %d envelopes of impressions past every view-through window", deleted)

    return app.timer(SWEEP_SECONDS, name="expire-impressions")(sweep)
