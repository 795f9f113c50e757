"""The secure hash, the IP whitelist, and what conversions and impressions earn."""

from __future__ import annotations

import hashlib
import hmac
from decimal import Decimal

import pytest

from app.attribution.payments import cpa_earning, cpm_earnings, impression_earning
from app.attribution.security import ip_allowed, secure_hash, secure_matches
from app.catalog.model import Offer, Payment
from app.catalog.validation import as_dict, parse_offer
from app.exceptions import CatalogError


def test_secure_is_hmac_sha256_of_id_and_action_id() -> None:
    expected = hmac.new(b"s3cret", b"abc:order-1", hashlib.sha256).hexdigest()
    assert secure_hash("s3cret", "abc", "order-1") == expected
    assert secure_matches("s3cret", "abc", "order-1", expected)
    assert secure_matches("s3cret", "abc", "order-1", expected.upper())
    assert not secure_matches("s3cret", "abc", "order-2", expected)  # not for another action
    assert not secure_matches("other", "abc", "order-1", expected)
    assert not secure_matches("s3cret", "abc", "order-1", None)
    assert secure_hash("s3cret", "abc", None) == secure_hash("s3cret", "abc", "")


def test_whitelist() -> None:
    assert ip_allowed("203.0.113.7", [])  # no whitelist: anyone
    allowed = ["203.0.113.0/24", "2001:db8::1/128"]
    assert ip_allowed("203.0.113.7", allowed)
    assert ip_allowed("::ffff:203.0.113.7", allowed)
    assert ip_allowed("2001:db8::1", allowed)
    assert not ip_allowed("198.51.100.1", allowed)
    assert not ip_allowed("not-an-ip", allowed)


OFFER = Offer(
    1,
    "O",
    1,
    payments=(
        Payment("CPM", revenue="2.00", payout="1.40"),
        Payment("CPA", revenue="12.00", payout="9.00", goal="1"),
        Payment("CPA", revenue="30.00", payout="20.00", currency="EUR", goal="sale"),
    ),
)


def test_cpa_pays_by_goal() -> None:
    sale = cpa_earning(OFFER, "sale")
    assert sale is not None
    assert (sale.revenue, sale.payout, sale.currency, sale.profit) == (
        Decimal("30.00"),
        Decimal("20.00"),
        "EUR",
        Decimal("10.00"),
    )
    lead = cpa_earning(OFFER, "1")
    assert lead is not None and lead.payout == Decimal("9.00")
    assert cpa_earning(OFFER, "unknown-goal") is None


def test_cpm_accrues_the_price_per_thousand_exactly() -> None:
    (cpm,) = cpm_earnings(OFFER)
    assert (cpm.revenue, cpm.payout) == (Decimal("0.002"), Decimal("0.0014"))
    # A thousand impressions earn exactly the CPM price, with no rounding drift.
    assert sum(cpm.revenue for _ in range(1000)) == Decimal("2.000")
    assert cpm_earnings(Offer(2, "CPA only", 1)) == []


PERSONAL = Offer(
    3,
    "Personal payouts",
    1,
    payments=(
        Payment("CPM", revenue="2.00", payout="1.40"),
        Payment("CPA", revenue="12.00", payout="9.00", goal="1"),
        Payment("CPM", revenue="2.00", payout="1.80", affiliates=(7,)),
        Payment("CPA", revenue="12.00", payout="10.50", goal="1", affiliates=(7, 8)),
    ),
)


def test_a_personal_payment_replaces_the_offers_for_its_affiliates_only() -> None:
    """Affiliate 7 gets its personal CPM and CPA; 8 its personal CPA and the offer's
    CPM; anyone else, and a goal with no personal payment, the offer's."""
    assert impression_earning(PERSONAL, 7).payout == Decimal("0.0018")
    assert impression_earning(PERSONAL, 8).payout == Decimal("0.0014")
    assert impression_earning(PERSONAL, 9).payout == Decimal("0.0014")
    assert impression_earning(PERSONAL).payout == Decimal("0.0014")
    for pid, payout in ((7, "10.50"), (8, "10.50"), (9, "9.00")):
        earning = cpa_earning(PERSONAL, "1", pid)
        assert earning is not None and earning.payout == Decimal(payout), pid
    assert cpa_earning(PERSONAL, "sale", 7) is None


def test_personal_payments_are_checked_and_kept_in_catalog_files() -> None:
    """A personal payment names existing affiliates, each once per type and goal;
    it round-trips through the catalog's JSON shape; other payments keep theirs."""
    base = {"id": 3, "title": "P", "advertiser_id": 1}
    payments = [
        {"type": "CPA", "revenue": "12", "payout": "9"},
        {"type": "CPA", "revenue": "12", "payout": "10.5", "affiliates": [7, 8]},
    ]
    offer = parse_offer({**base, "payments": payments})
    assert offer.payments[1].affiliates == (7, 8)
    shape = as_dict(offer)["payments"]
    assert "affiliates" not in shape[0] and shape[1]["affiliates"] == [7, 8]
    assert parse_offer({**base, "payments": shape}) == offer
    for bad, field, says in (
        ([*payments, {**payments[1], "affiliates": [8]}], "payments[2]", "of affiliate 8"),
        ([{**payments[1], "affiliates": [7, 7]}], "payments[0].affiliates", "twice"),
        ([{**payments[1], "affiliates": "7"}], "payments[0].affiliates", "list of affiliate"),
        ([{**payments[1], "affiliates": [True]}], "payments[0].affiliates", "whole number"),
    ):
        with pytest.raises(CatalogError) as caught:
            parse_offer({**base, "payments": bad})
        assert (caught.value.field, says in caught.value.problem) == (field, True), bad
