"""What becomes of an impression the edge accepted: recorded with what it earns and
forwarded, or rejected with its reason. Pure: the impressions agent
(agents/impressions.py) calls it for each impression of a batch."""

from __future__ import annotations

from dataclasses import dataclass

from app.attribution.payments import impression_earning
from app.catalog.eligibility import rejection_reason
from app.catalog.model import Catalog
from app.events.records import ForwardTask, Impression, RejectedImpression
from app.forwarding.plan import forward_task


@dataclass(frozen=True)
class Recorded:
    """A tracked impression: ``earning`` is the copy for export, with what it earned
    at the offer's CPM price; ``forward`` its delivery to the offer's impressions
    destination URL, if it has one."""

    impression: Impression
    earning: Impression
    forward: ForwardTask | None
    view_through_window: int
    """Seconds a click or postback may follow it (the offer's, at its time)."""


def judge_impression(in_force: Catalog, impression: Impression) -> Recorded | RejectedImpression:
    """Judge ``impression`` by ``in_force``, the catalog in force when the edge accepted
    it, so lag and replays do not change the verdict (app.catalog.history)."""
    reason = rejection_reason(in_force, impression.offer_id, impression.pid, impression=True)
    if reason is not None:
        judged = in_force.offers.get(impression.offer_id)
        return RejectedImpression(
            aimp_id=impression.aimp_id,
            offer_id=impression.offer_id,
            pid=impression.pid,
            reason=reason.value,
            imp_id=impression.imp_id,
            advertiser_id=None if judged is None else judged.advertiser_id,
        )
    offer = in_force.offers[impression.offer_id]
    earning = impression_earning(offer, impression.pid)
    return Recorded(
        impression=impression,
        earning=impression.derive(
            revenue=str(earning.revenue),
            payout=str(earning.payout),
            currency=earning.currency,
            advertiser_id=offer.advertiser_id,
        ),
        forward=forward_task(offer, impression),
        view_through_window=offer.view_through_window,
    )
