"""From a recorded impression to its forward task: which URL, filled with what.

An offer's destination URLs are compiled once per version of the offer: offers are
immutable values, so a catalog change makes a new :class:`~app.catalog.model.Offer`
and the cache below compiles it on first use; unchanged offers hit the cache.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import lru_cache

from app.catalog.model import Offer
from app.events.records import SUB_FIELDS, ForwardTask, Impression
from app.forwarding.split import choose, destinations
from app.forwarding.templates import UrlTemplate
from app.ids import id_ms

# Offers in force at once, times the versions the catalog history may still serve.
PLAN_CACHE_SIZE = 8192


@dataclass(frozen=True)
class ForwardPlan:
    """An offer's destinations with their weights, each URL compiled."""

    weighted: tuple[tuple[str, int], ...]
    templates: dict[str, UrlTemplate]

    def task(self, offer: Offer, impression: Impression) -> ForwardTask:
        destination = choose(self.weighted, impression.aimp_id)
        values: dict[str, object] = {
            "offer_id": offer.id,
            "pid": impression.pid,
            "advertiser_id": offer.advertiser_id,
            "impression_id": impression.imp_id,
            "aimp_id": impression.aimp_id,
            "ua": impression.ua,
            "ip": impression.ip,
            # The impression's own time, so a replayed task is the same delivery.
            "time": id_ms(impression.aimp_id) // 1000,
            "rand": random.getrandbits(31),
        }
        for name in SUB_FIELDS:
            values[name] = getattr(impression, name)
        return ForwardTask(
            aimp_id=impression.aimp_id,
            offer_id=offer.id,
            pid=impression.pid,
            advertiser_id=offer.advertiser_id,
            destination=destination,
            url=self.templates[destination].fill(values),
        )


@lru_cache(maxsize=PLAN_CACHE_SIZE)
def forward_plan(offer: Offer) -> ForwardPlan | None:
    """The offer's plan, or None when it has no impressions destination URL."""
    weighted = tuple(destinations(offer))
    if not weighted:
        return None
    return ForwardPlan(weighted, {url: UrlTemplate.compile(url) for url, _ in weighted})


def forward_task(offer: Offer, impression: Impression) -> ForwardTask | None:
    """The delivery to make for a recorded impression, if its offer forwards."""
    plan = forward_plan(offer)
    return None if plan is None else plan.task(offer, impression)
