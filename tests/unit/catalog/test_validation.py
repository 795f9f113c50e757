"""Catalog validation: every refusal names the field and the problem."""

from __future__ import annotations

from typing import Any

import pytest

from app.catalog import CatalogError, parse_affiliate, parse_offer
from app.catalog.validation import as_dict

BASE: dict[str, Any] = {"id": 1, "title": "Offer", "advertiser_id": 2}


def test_a_full_offer_is_read_with_defaults() -> None:
    """Durations accept 24h/30d forms; the main URL takes the weight the others leave."""
    offer = parse_offer(
        {
            **BASE,
            "allow_impressions": True,
            "impressions_url": "https://adv.example/imp?a={aimp_id}&s={sub1}",
            "additional_impressions_urls": [
                {"url": "https://b.example/i?x={impression_id}", "weight": 25},
                {"url": "http://c.example/i", "weight": 15},
            ],
            "view_through_window": "12h",
            "payments": [{"type": "CPM", "revenue": "2.50", "payout": "1.25", "currency": "EUR"}],
            "postback_ip_whitelist": ["203.0.113.0/24", "198.51.100.7"],
        }
    )
    assert offer.main_url_weight == 60
    assert offer.view_through_window == 12 * 3600 and offer.click_session == 30 * 86400
    assert offer.postback_ip_whitelist == ("203.0.113.0/24", "198.51.100.7/32")
    assert as_dict(offer)["payments"][0]["revenue"] == "2.50"


def test_an_update_changes_only_the_fields_given() -> None:
    offer = parse_offer({**BASE, "allow_impressions": True})
    paused = parse_offer({"status": "paused"}, offer)
    assert paused.status == "paused" and paused.allow_impressions is True


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        (
            {"impressions_url": "ftp://adv.example/i"},
            "impressions_url",
            "must be an http or https URL",
        ),
        (
            {"impressions_url": "javascript:alert(1)"},
            "impressions_url",
            "must be an http or https URL",
        ),
        ({"impressions_url": "https:///nohost"}, "impressions_url", "must name a host"),
        ({"tracking_url": "http://[::1/x"}, "tracking_url", "is not a valid URL"),
        (
            {"view_through_window": 10**17},
            "view_through_window",
            "at most 31622400 (366d)",
        ),
        (
            {"click_session": "99999999999999999999999d"},
            "click_session",
            "at most 31622400 (366d)",
        ),
        (
            {"impressions_url": "https://a.example/?c={clickid}"},
            "impressions_url",
            "{clickid} cannot be used",
        ),
        (
            {"impressions_url": "https://a.example/?c={foo}"},
            "impressions_url",
            "unknown macro {foo}",
        ),
        ({"tracking_url": "https://a.example/?c={nope}"}, "tracking_url", "unknown macro {nope}"),
        # An affiliate's value must never choose the host a click or impression goes to.
        (
            {"tracking_url": "https://{sub1}/landing"},
            "tracking_url",
            "has the macro {sub1} in its host",
        ),
        (
            {"impressions_url": "https://{sub2}.advertiser.example/imp?a={aimp_id}"},
            "impressions_url",
            "has the macro {sub2} in its host",
        ),
        (
            {"trafficback_url": "https://user:{sub3}@fallback.example/"},
            "trafficback_url",
            "has the macro {sub3} in its host",
        ),
        (
            {"impressions_url": "https://a.example:{sub1}/imp"},
            "impressions_url",
            "has the macro {sub1} in its host",
        ),
        (
            {"trafficback_url": "gopher://x.example/"},
            "trafficback_url",
            "must be an http or https URL",
        ),
        (
            {
                "additional_impressions_urls": [
                    {"url": "https://a.example/?c={clickid}", "weight": 5}
                ]
            },
            "additional_impressions_urls[0].url",
            "{clickid} cannot be used",
        ),
        (
            {"additional_impressions_urls": [{"url": "https://a.example/", "weight": 0}]},
            "additional_impressions_urls[0].weight",
            "must be a whole number from 1 to 100",
        ),
        (
            {"additional_impressions_urls": [{"url": "https://a.example/", "weight": 2.5}]},
            "additional_impressions_urls[0].weight",
            "must be a whole number from 1 to 100",
        ),
        (
            {
                "additional_impressions_urls": [
                    {"url": "https://a.example/", "weight": 60},
                    {"url": "https://b.example/", "weight": 41},
                ]
            },
            "additional_impressions_urls",
            "weights add up to 101",
        ),
        (
            {
                "additional_impressions_urls": [
                    {"url": f"https://{n}.example/", "weight": 1} for n in range(11)
                ]
            },
            "additional_impressions_urls",
            "at most 10 are allowed",
        ),
        ({"status": "running"}, "status", "must be one of active, paused, stopped, deleted"),
        ({"allow_impressions": "yes"}, "allow_impressions", "must be true or false"),
        ({"view_through_window": "soon"}, "view_through_window", "duration like 24h"),
        (
            {"payments": [{"type": "CPC", "revenue": 1, "payout": 1}]},
            "payments[0].type",
            "must be one of CPA, CPM",
        ),
        (
            {"payments": [{"type": "CPA", "revenue": "x", "payout": 1}]},
            "payments[0].revenue",
            "decimal amount",
        ),
        ({"postback_ip_whitelist": ["300.1.1.1"]}, "postback_ip_whitelist[0]", "not an IP address"),
        ({"colour": "red"}, "colour", "is not a field of an offer"),
        ({"title": "Summer\x07sale"}, "title", "must not contain control characters"),
        ({"title": "two\nlines"}, "title", "must not contain control characters"),
        ({"id": True}, "id", "must be a whole number"),
        (
            {"tracking_url": "adv.example/landing"},
            "tracking_url",
            "'adv.example/landing' has no scheme (start it with https://)",
        ),
        ({"tracking_url": "ftp://adv.example/x"}, "tracking_url", "not a ftp: one"),
        # A regex's $ matches before a final newline: "USD\n" was taken, a currency of
        # its own in every report and an answer against the admin API's document.
        (
            {"payments": [{"type": "CPM", "revenue": 1, "payout": 1, "currency": "USD\n"}]},
            "payments[0].currency",
            "three-letter code like USD",
        ),
    ],
)
def test_refusals_name_the_field(changes: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_offer({**BASE, **changes})
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_a_new_offer_needs_its_identity() -> None:
    with pytest.raises(CatalogError, match="advertiser_id: is required"):
        parse_offer({"id": 3, "title": "x"})
    with pytest.raises(CatalogError, match="id: must be a whole number"):
        parse_offer({"title": "x", "advertiser_id": 1})


def test_affiliates_validate_status() -> None:
    with pytest.raises(CatalogError, match="status: must be one of active"):
        parse_affiliate({"id": 1, "name": "a", "status": "gone"})
    assert (
        parse_affiliate({"status": "deleted"}, parse_affiliate({"id": 1, "name": "a"})).status
        == "deleted"
    )
