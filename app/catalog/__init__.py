"""The offer catalog: advertisers, offers, affiliates and access rules."""

from app.catalog.eligibility import RejectionReason, rejection_reason
from app.catalog.model import Advertiser, Affiliate, Catalog, Destination, Offer, Payment
from app.catalog.validation import parse_advertiser, parse_affiliate, parse_offer
from app.exceptions import CatalogError

__all__ = [
    "Advertiser",
    "Affiliate",
    "Catalog",
    "CatalogError",
    "Destination",
    "Offer",
    "Payment",
    "RejectionReason",
    "parse_advertiser",
    "parse_affiliate",
    "parse_offer",
    "rejection_reason",
]
