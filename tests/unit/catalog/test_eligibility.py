"""One test per rule for when an impression is not tracked."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.catalog import Advertiser, Affiliate, Catalog, Offer, RejectionReason, rejection_reason


def catalog_factory() -> Catalog:
    """Advertiser 1 with active, impression-enabled offer 10; active affiliate 7."""
    return Catalog(
        advertisers={1: Advertiser(1, "Adv")},
        offers={
            10: Offer(10, "Offer", 1, allow_impressions=True, tracking_url="https://a.example/c")
        },
        affiliates={7: Affiliate(7, "Aff")},
    )


def test_an_eligible_impression_is_tracked() -> None:
    assert rejection_reason(catalog_factory(), 10, 7, impression=True) is None


@pytest.mark.parametrize("status", ["paused", "stopped"])
def test_offer_not_active(status: str) -> None:
    c = catalog_factory()
    c.offers[10] = replace(c.offers[10], status=status)
    assert rejection_reason(c, 10, 7, impression=True) is RejectionReason.OFFER_NOT_ACTIVE


def test_offer_deleted_or_unknown() -> None:
    c = catalog_factory()
    assert rejection_reason(c, 99, 7, impression=True) is RejectionReason.OFFER_UNKNOWN
    c.offers[10] = replace(c.offers[10], status="deleted")
    assert rejection_reason(c, 10, 7, impression=True) is RejectionReason.OFFER_DELETED


@pytest.mark.parametrize("status", ["pending", "inactive", "blocked", "deleted"])
def test_advertiser_not_active(status: str) -> None:
    """An offer of an advertiser that is not active tracks nothing."""
    c = catalog_factory()
    c.advertisers[1] = replace(c.advertisers[1], status=status)
    assert rejection_reason(c, 10, 7, impression=True) is RejectionReason.ADVERTISER_NOT_ACTIVE


@pytest.mark.parametrize("status", ["pending", "inactive", "blocked"])
def test_affiliate_not_active(status: str) -> None:
    c = catalog_factory()
    c.affiliates[7] = replace(c.affiliates[7], status=status)
    assert rejection_reason(c, 10, 7, impression=True) is RejectionReason.AFFILIATE_NOT_ACTIVE


def test_affiliate_deleted_or_unknown() -> None:
    c = catalog_factory()
    assert rejection_reason(c, 10, 8, impression=True) is RejectionReason.AFFILIATE_UNKNOWN
    c.affiliates[7] = replace(c.affiliates[7], status="deleted")
    assert rejection_reason(c, 10, 7, impression=True) is RejectionReason.AFFILIATE_DELETED


def test_private_offer_needs_the_affiliate_enabled() -> None:
    c = catalog_factory()
    c.offers[10] = replace(c.offers[10], access="approval")
    assert rejection_reason(c, 10, 7, impression=True) is RejectionReason.AFFILIATE_NOT_APPROVED
    c.enabled.add((10, 7))
    assert rejection_reason(c, 10, 7, impression=True) is None


def test_affiliate_disabled_from_the_offer() -> None:
    c = catalog_factory()
    c.disabled.add((10, 7))
    assert (
        rejection_reason(c, 10, 7, impression=True) is RejectionReason.AFFILIATE_DISABLED_FOR_OFFER
    )


def test_advertiser_disabled_for_the_affiliate() -> None:
    c = catalog_factory()
    c.advertiser_blocks.add((1, 7))
    assert (
        rejection_reason(c, 10, 7, impression=True)
        is RejectionReason.ADVERTISER_DISABLED_FOR_AFFILIATE
    )


def test_allow_impressions_off_rejects_impressions_but_not_clicks() -> None:
    c = catalog_factory()
    c.offers[10] = replace(c.offers[10], allow_impressions=False)
    assert rejection_reason(c, 10, 7, impression=True) is RejectionReason.IMPRESSIONS_NOT_ALLOWED
    assert rejection_reason(c, 10, 7, impression=False) is None


def test_a_click_needs_a_tracking_url_and_an_impression_does_not() -> None:
    c = catalog_factory()
    c.offers[10] = replace(c.offers[10], tracking_url=None)
    assert rejection_reason(c, 10, 7, impression=False) is RejectionReason.NO_TRACKING_URL
    assert rejection_reason(c, 10, 7, impression=True) is None


def test_allow_impressions_is_off_by_default() -> None:
    assert Offer(1, "t", 1).allow_impressions is False
