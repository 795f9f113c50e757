"""Which offers take view-through conversions from anyone, and what a change to one
is answered with: a warning, or a refusal when the network requires protection."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app.catalog.model import Catalog, Offer
from app.catalog.postback_security import (
    catalog_warnings,
    judge,
    takes_view_through_from_anyone,
)
from app.exceptions import CatalogError

OPEN = Offer(id=12, title="Banner", advertiser_id=1, allow_impressions=True)
WARNING = (
    "offer 12 takes view-through conversions with neither a postback token nor an IP "
    "whitelist: anyone who learns an aimp_id can post a conversion for it; set "
    "postback_token (postbacks must then carry secure) or postback_ip_whitelist"
)


@pytest.mark.parametrize(
    ("offer", "open_to_anyone"),
    [
        (OPEN, True),
        (replace(OPEN, postback_token="s3cret"), False),
        (replace(OPEN, postback_ip_whitelist=("203.0.113.0/24",)), False),
        (replace(OPEN, postback_token="s3cret", postback_ip_whitelist=("::1/128",)), False),
        (replace(OPEN, allow_impressions=False), False),  # no impression to name
        (replace(OPEN, status="paused"), False),  # postbacks refused while not active
        (replace(OPEN, status="stopped"), False),
        (replace(OPEN, status="deleted"), False),
    ],
    ids=[
        "neither",
        "token",
        "whitelist",
        "both",
        "no impressions",
        "paused",
        "stopped",
        "deleted",
    ],
)
def test_only_an_active_offer_with_impressions_and_no_check_is_open(
    offer: Offer, open_to_anyone: bool
) -> None:
    """A token or a whitelist each protects; no impressions or no postbacks, nothing to forge."""
    assert takes_view_through_from_anyone(offer) is open_to_anyone
    assert judge(offer, required=False) == ([WARNING] if open_to_anyone else [])


def test_the_network_setting_refuses_instead_of_warning() -> None:
    """With the setting, an open offer is a refusal naming the setting and the fix;
    a protected or paused offer passes without a word."""
    with pytest.raises(CatalogError) as refused:
        judge(OPEN, required=True)
    assert refused.value.field == "postback_token"
    assert str(refused.value).startswith(
        "postback_token: offer 12 takes view-through conversions, and this network requires "
        "a postback_token or a postback_ip_whitelist for them (POSTBACK_SECURITY_REQUIRED)"
    )
    assert judge(replace(OPEN, postback_token="s3cret"), required=True) == []
    assert judge(replace(OPEN, status="paused"), required=True) == []


def test_a_catalog_lists_one_line_per_open_offer_by_id() -> None:
    """Under the setting, each line also says the offer is kept but cannot be changed so."""
    catalog = Catalog(
        offers={
            12: OPEN,
            3: replace(OPEN, id=3),
            7: replace(OPEN, id=7, postback_token="s3cret"),
        }
    )
    assert catalog_warnings(catalog, required=False) == [
        WARNING.replace("offer 12", "offer 3"),
        WARNING,
    ]
    kept = catalog_warnings(catalog, required=True)
    assert [line.split(";")[0] for line in kept] == [
        "offer 3 takes view-through conversions with neither a postback token nor an IP "
        "whitelist: anyone who learns an aimp_id can post a conversion for it",
        "offer 12 takes view-through conversions with neither a postback token nor an IP "
        "whitelist: anyone who learns an aimp_id can post a conversion for it",
    ]
    assert all(
        line.endswith(
            "; saved where POSTBACK_SECURITY_REQUIRED was not in force, it still takes them, "
            "but any change that leaves it so is refused"
        )
        for line in kept
    )
