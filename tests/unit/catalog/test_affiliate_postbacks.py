"""Affiliate postback URLs in the catalog: an affiliate's own, an offer's overrides,
each refusal naming the field and the problem, and the round trip through the
catalog topic and catalog files."""

from __future__ import annotations

from ipaddress import ip_network
from typing import Any

import orjson
import pytest

from app.catalog.changes import Change, apply_change, decode, entity_change
from app.catalog.destination_addresses import AddressPolicy
from app.catalog.files import plan_document, to_document
from app.catalog.model import AffiliatePostback, Catalog
from app.catalog.validation import parse_affiliate, parse_offer, refused_postback_addresses
from app.exceptions import CatalogError
from tests.unit.catalog.test_files import catalog_from

GLOBAL = "https://aff.example/pb?click={clickid}&imp={impression_id}&st={status}&p={payout}"
OVERRIDE = "https://aff.example/offer-10?a={aimp_id}&goal={goal}"
DOCUMENT: dict[str, Any] = {
    "advertisers": [{"id": 1, "name": "Adv"}],
    "affiliates": [
        {"id": 7, "name": "Aff", "postback_urls": [GLOBAL]},
        {
            "id": 8,
            "name": "Picky",
            "postback_urls": [{"url": GLOBAL, "statuses": ["approved", "declined"]}],
        },
    ],
    "offers": [
        {
            "id": 10,
            "title": "Overridden",
            "advertiser_id": 1,
            "affiliate_postbacks": [
                {"url": OVERRIDE, "affiliates": [7], "statuses": ["approved"]},
                {"url": "https://net.example/all?o={offer_id}&pid={pid}"},
            ],
        }
    ],
}


def test_postback_urls_are_read_as_urls_or_objects() -> None:
    """A plain URL is for every status; an object may name the statuses it is for."""
    affiliate = parse_affiliate(
        {"id": 7, "name": "Aff", "postback_urls": [GLOBAL, {"url": OVERRIDE, "statuses": ["hold"]}]}
    )
    assert affiliate.postback_urls == (
        AffiliatePostback(GLOBAL),
        AffiliatePostback(OVERRIDE, ("hold",)),
    )
    assert parse_affiliate({"postback_urls": []}, affiliate).postback_urls == ()


def test_an_offer_override_names_its_affiliates_or_none() -> None:
    offer = parse_offer(
        {
            "id": 10,
            "title": "O",
            "advertiser_id": 1,
            "affiliate_postbacks": [{"url": OVERRIDE, "affiliates": [7, 9]}, GLOBAL],
        }
    )
    assert offer.affiliate_postbacks == (
        AffiliatePostback(OVERRIDE, affiliates=(7, 9)),
        AffiliatePostback(GLOBAL),
    )


@pytest.mark.parametrize(
    ("item", "field", "problem"),
    [
        ("ftp://aff.example/pb", "postback_urls[0].url", "must be an http or https URL"),
        ("aff.example/pb", "postback_urls[0].url", "has no scheme"),
        ("https:///pb", "postback_urls[0].url", "must name a host"),
        (
            "https://aff.example/pb?x={sum}",
            "postback_urls[0].url",
            "unknown macro {sum}; known: action_id, aimp_id, clickid, currency, goal,",
        ),
        (
            "https://{sub1}.aff.example/pb",
            "postback_urls[0].url",
            "has the macro {sub1} in its host",
        ),
        (
            {"url": GLOBAL, "statuses": ["paid"]},
            "postback_urls[0].statuses",
            "'paid' is not a conversion status; known: approved, pending, declined, hold",
        ),
        (
            {"url": GLOBAL, "statuses": []},
            "postback_urls[0].statuses",
            "leave it out to be notified of every status",
        ),
        (
            {"url": GLOBAL, "statuses": ["approved", "approved"]},
            "postback_urls[0].statuses",
            "lists a status twice",
        ),
        ({"statuses": ["approved"]}, "postback_urls[0].url", "is required"),
        (
            {"url": GLOBAL, "affiliates": [7]},
            "postback_urls[0].affiliates",
            "is for an offer's affiliate_postbacks",
        ),
        ({"url": GLOBAL, "method": "POST"}, "postback_urls[0].method", "is not a field"),
        (42, "postback_urls[0]", "must be a URL or a {url, statuses} object"),
    ],
)
def test_a_bad_postback_url_is_refused_with_its_field(item: Any, field: str, problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        parse_affiliate({"id": 7, "name": "Aff", "postback_urls": [item]})
    assert caught.value.field == field
    assert problem in caught.value.problem


def test_a_repeated_url_and_too_many_urls_are_refused() -> None:
    with pytest.raises(CatalogError, match=r"repeats the postback URL .* for affiliate 7"):
        parse_offer(
            {
                "id": 10,
                "title": "O",
                "advertiser_id": 1,
                "affiliate_postbacks": [
                    {"url": OVERRIDE, "affiliates": [7]},
                    {"url": OVERRIDE, "affiliates": [8, 7]},
                ],
            }
        )
    with pytest.raises(CatalogError, match="has 11 URLs; at most 10"):
        parse_affiliate({"id": 7, "name": "A", "postback_urls": [GLOBAL] * 11})
    with pytest.raises(CatalogError, match="must be a list of postback URLs"):
        parse_affiliate({"id": 7, "name": "A", "postback_urls": GLOBAL})


def test_an_override_for_an_unknown_affiliate_is_refused() -> None:
    changes, errors = plan_document(
        Catalog(),
        {
            "advertisers": [{"id": 1, "name": "Adv"}],
            "offers": [
                {
                    "id": 10,
                    "title": "O",
                    "advertiser_id": 1,
                    "affiliate_postbacks": [{"url": OVERRIDE, "affiliates": [99]}],
                }
            ],
        },
    )
    assert changes == []
    assert [(e.field, e.problem) for e in errors] == [
        ("offers[0].affiliate_postbacks[0].affiliates", "there is no affiliate 99; create it first")
    ]


def test_export_then_apply_of_postback_urls_changes_nothing() -> None:
    """Read back from the catalog topic (JSON lists) and exported, the URLs plan no
    change when applied again."""
    catalog = catalog_from(DOCUMENT)
    topic_read = Catalog()
    for kind in ("advertisers", "affiliates", "offers"):
        for entity in getattr(catalog, kind).values():
            key, value = entity_change(entity).encode()
            apply_change(topic_read, decode(key, value))
    assert topic_read.affiliates == catalog.affiliates and topic_read.offers == catalog.offers
    document = to_document(topic_read)
    assert document["affiliates"][0]["postback_urls"] == [{"url": GLOBAL}]
    assert document["offers"][0]["affiliate_postbacks"][0] == {
        "url": OVERRIDE,
        "statuses": ["approved"],
        "affiliates": [7],
    }
    assert plan_document(topic_read, orjson.loads(orjson.dumps(document))) == ([], [])


def test_an_affiliate_written_before_postback_urls_reads_without_any() -> None:
    catalog = Catalog()
    apply_change(catalog, Change("affiliate:7", {"id": 7, "name": "Old", "status": "active"}))
    assert catalog.affiliates[7].postback_urls == ()


def test_a_postback_url_on_an_address_the_forwarder_refuses_is_refused() -> None:
    """IP addresses are judged as the forwarder judges them; names are left to the
    resolver at delivery time; FORWARD_ALLOWED_NETWORKS lets one in."""
    entity = {
        "postback_urls": [
            {"url": "http://10.1.2.3/pb?c={clickid}"},
            {"url": "https://aff.example/pb"},
            {"url": "http://[::ffff:169.254.169.254]/latest"},
            {"url": "http://127.0.0.1:8080/pb"},
        ]
    }
    refused = refused_postback_addresses(entity, AddressPolicy().literal_refusal)
    assert [(e.field, e.problem.split(";")[0]) for e in refused] == [
        ("postback_urls[0].url", "10.1.2.3 is a private address"),
        ("postback_urls[2].url", "::ffff:169.254.169.254 is a link-local address"),
        ("postback_urls[3].url", "127.0.0.1 is a loopback address"),
    ]
    assert "unless FORWARD_ALLOWED_NETWORKS lists it" in refused[0].problem
    allowed = AddressPolicy([ip_network("127.0.0.1/32")]).literal_refusal
    assert [e.field for e in refused_postback_addresses(entity, allowed)] == [
        "postback_urls[0].url",
        "postback_urls[2].url",
    ]
