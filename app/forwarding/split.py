"""Which destination an impression goes to: by weight, decided by its ``aimp_id``.

The choice hashes the ``aimp_id`` into a bucket from 0 to 99 and walks the
weights, so the same impression always goes to the same URL (a replay after a
crash included) and, over many impressions, each URL gets its weight in percent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from app.catalog.model import Offer

BUCKETS = 100


def bucket(aimp_id: str) -> int:
    """A bucket from 0 to 99, uniform over aimp_ids. A hash rather than the id's own
    bits: its counter and time bits are not uniform over short runs."""
    digest = hashlib.blake2b(aimp_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def choose(weighted_urls: Sequence[tuple[str, int]], aimp_id: str) -> str:
    """One of ``weighted_urls`` (weights summing to 100) for this impression."""
    point = bucket(aimp_id)
    for url, weight in weighted_urls:
        if point < weight:
            return url
        point -= weight
    raise ValueError(f"weights add up to less than {BUCKETS}: {list(weighted_urls)}")


def destinations(offer: Offer) -> list[tuple[str, int]]:
    """The offer's destination URLs with their weights; the main URL takes the rest
    of 100. Empty when the offer has no impressions URL."""
    if offer.impressions_url is None:
        return []
    weighted = [(d.url, d.weight) for d in offer.additional_impressions_urls]
    if offer.main_url_weight:
        weighted.insert(0, (offer.impressions_url, offer.main_url_weight))
    return weighted
