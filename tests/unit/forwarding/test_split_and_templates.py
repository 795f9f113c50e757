"""Destination choice by weight and URL templates that cannot be injected."""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs, urlsplit

from app.catalog.model import Destination, Offer
from app.forwarding.split import choose, destinations
from app.forwarding.templates import UrlTemplate
from app.ids import IdGenerator
from tests.ids import TEST_SEAL

OFFER = Offer(
    1,
    "O",
    1,
    impressions_url="https://main.example/i",
    additional_impressions_urls=(
        Destination("https://b.example/i", 25),
        Destination("https://c.example/i", 5),
    ),
)


def test_split_follows_the_weights_over_100k_impressions() -> None:
    """Each URL's share is within 2 points of its weight (main takes 70)."""
    gen = IdGenerator(TEST_SEAL)
    weighted = destinations(OFFER)
    counts = Counter(choose(weighted, gen.new_id()) for _ in range(100_000))
    for url, weight in weighted:
        assert abs(counts[url] / 1000 - weight) <= 2, (url, counts[url])


def test_the_same_aimp_id_always_goes_to_the_same_url() -> None:
    gen = IdGenerator(TEST_SEAL)
    ids = [gen.new_id() for _ in range(1000)]
    weighted = destinations(OFFER)
    assert [choose(weighted, a) for a in ids] == [choose(weighted, a) for a in ids]


def test_additional_urls_summing_to_100_leave_the_main_url_nothing() -> None:
    offer = Offer(
        1,
        "O",
        1,
        impressions_url="https://main.example/",
        additional_impressions_urls=(Destination("https://b.example/", 100),),
    )
    assert destinations(offer) == [("https://b.example/", 100)]
    assert destinations(Offer(2, "No URL", 1)) == []


def test_values_are_encoded_so_they_cannot_add_parameters() -> None:
    """A sub1 of ``a&b=c`` arrives as one value; a path macro cannot climb out."""
    template = UrlTemplate.compile("https://adv.example/{pid}/imp?s={sub1}&a={aimp_id}&u={ua}")
    url = template.fill(
        {"pid": "../admin", "sub1": "a&b=c", "aimp_id": "01a2", "ua": "Mozilla/5.0 (X; Y) é"}
    )
    parts = urlsplit(url)
    assert parts.path == "/..%2Fadmin/imp"
    assert parse_qs(parts.query) == {
        "s": ["a&b=c"],
        "a": ["01a2"],
        "u": ["Mozilla/5.0 (X; Y) é"],
    }


def test_unset_macros_become_empty() -> None:
    template = UrlTemplate.compile("https://adv.example/i?s={sub2}&x=1")
    assert template.fill({}) == "https://adv.example/i?s=&x=1"
    assert template.macros == ("sub2",)
