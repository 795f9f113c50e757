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
    NO_TRACKING_URL = "no_tracking_url"
    """A click on an offer that has no tracking URL to send it to."""


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
    if not impression and offer.tracking_url is None:
        return RejectionReason.NO_TRACKING_URL
    return None


EXPLANATIONS = {
    RejectionReason.OFFER_UNKNOWN: "there is no such offer",
    RejectionReason.OFFER_DELETED: "the offer is deleted",
    RejectionReason.OFFER_NOT_ACTIVE: "the offer is paused or stopped",
    RejectionReason.ADVERTISER_NOT_ACTIVE: "the offer's advertiser is not active",
    RejectionReason.AFFILIATE_UNKNOWN: "there is no such affiliate",
    RejectionReason.AFFILIATE_DELETED: "the affiliate is deleted",
    RejectionReason.AFFILIATE_NOT_ACTIVE: "the affiliate is not active",
    RejectionReason.AFFILIATE_NOT_APPROVED: "the offer needs approval and the affiliate has none",
    RejectionReason.AFFILIATE_DISABLED_FOR_OFFER: "the affiliate is disabled from the offer",
    RejectionReason.ADVERTISER_DISABLED_FOR_AFFILIATE: (
        "the offer's advertiser is disabled for the affiliate"
    ),
    RejectionReason.IMPRESSIONS_NOT_ALLOWED: "the offer does not accept impressions",
    RejectionReason.NO_TRACKING_URL: "the offer has no tracking URL to send clicks to",
}
"""What each reason means, for the answers affiliates read."""
