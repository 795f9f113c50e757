"""Whether an impression or click may be tracked, and if not, why."""

from __future__ import annotations

from enum import StrEnum

from app.catalog.model import Catalog


class RejectionReason(StrEnum):
    """Reason codes, counted per code in the Rejections slice."""

    OFFER_UNKNOWN = "offer_unknown"
    OFFER_DELETED = "offer_deleted"
    OFFER_NOT_ACTIVE = "offer_not_active"
    ADVERTISER_NOT_ACTIVE = "advertiser_not_active"
    AFFILIATE_UNKNOWN = "affiliate_unknown"
    AFFILIATE_DELETED = "affiliate_deleted"
    AFFILIATE_NOT_ACTIVE = "affiliate_not_active"
    AFFILIATE_NOT_APPROVED = "affiliate_not_approved"
    AFFILIATE_DISABLED_FOR_OFFER = "affiliate_disabled_for_offer"
    ADVERTISER_DISABLED_FOR_AFFILIATE = "advertiser_disabled_for_affiliate"
    IMPRESSIONS_NOT_ALLOWED = "impressions_not_allowed"


def rejection_reason(
    catalog: Catalog, offer_id: int, pid: int, *, impression: bool
) -> RejectionReason | None:
    """None when the event may be tracked; otherwise the first rule it breaks.

    The order puts what the operator must fix first (an unknown or deleted offer
    outranks an affiliate's status), so one event always gets one stable reason.
    ``allow_impressions`` applies to impressions only, never to clicks.
    """
    offer = catalog.offers.get(offer_id)
    if offer is None:
        return RejectionReason.OFFER_UNKNOWN
    if offer.status == "deleted":
        return RejectionReason.OFFER_DELETED
    if offer.status != "active":
        return RejectionReason.OFFER_NOT_ACTIVE
    # Not among the product rules by name, but an offer of a deleted or blocked
    # advertiser has nobody to deliver to or pay for it.
    advertiser = catalog.advertisers.get(offer.advertiser_id)
    if advertiser is None or advertiser.status != "active":
        return RejectionReason.ADVERTISER_NOT_ACTIVE
    affiliate = catalog.affiliates.get(pid)
    if affiliate is None:
        return RejectionReason.AFFILIATE_UNKNOWN
    if affiliate.status == "deleted":
        return RejectionReason.AFFILIATE_DELETED
    if affiliate.status != "active":
        return RejectionReason.AFFILIATE_NOT_ACTIVE
    if (offer_id, pid) in catalog.disabled:
        return RejectionReason.AFFILIATE_DISABLED_FOR_OFFER
    if offer.access == "approval" and (offer_id, pid) not in catalog.enabled:
        return RejectionReason.AFFILIATE_NOT_APPROVED
    if (offer.advertiser_id, pid) in catalog.advertiser_blocks:
        return RejectionReason.ADVERTISER_DISABLED_FOR_AFFILIATE
    if impression and not offer.allow_impressions:
        return RejectionReason.IMPRESSIONS_NOT_ALLOWED
    return None
