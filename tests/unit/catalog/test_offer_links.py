"""Generated links (issue 21 point 1): what an offer's affiliate and advertiser get."""

from __future__ import annotations

from typing import Any

import pytest

from app.catalog.changes import apply_change
from app.catalog.eligibility import EXPLANATIONS, RejectionReason
from app.catalog.files import plan_document
from app.catalog.model import Catalog
from app.catalog.offer_links import offer_links, parse_pid
from app.exceptions import CatalogError, ConfigurationError, UnknownEntity
from app.settings import Settings

BASE = "https://track.network.example"
LANDING = {"tracking_url": "https://adv.example/land?c={clickid}"}
SUBS = "".join(f"&sub{n}={{sub{n}}}" for n in range(1, 9))


def _catalog() -> Catalog:
    document: dict[str, Any] = {
        "advertisers": [{"id": 1, "name": "Adv"}],
        "affiliates": [{"id": 7, "name": "Aff"}, {"id": 8, "name": "Waiting"}],
        "offers": [
            {"id": 10, "title": "Seen", "advertiser_id": 1, "allow_impressions": True} | LANDING,
            {
                "id": 11,
                "title": "Signed",
                "advertiser_id": 1,
                "allow_impressions": True,
                "postback_token": "t0ken",
                "access": "approval",
                "enabled_affiliates": [7],
            }
            | LANDING,
            {"id": 12, "title": "Clicks only", "advertiser_id": 1} | LANDING,
        ],
    }
    catalog = Catalog()
    changes, errors = plan_document(catalog, document)
    assert errors == []
    for change in changes:
        apply_change(catalog, change)
    return catalog


def test_an_offer_with_impressions_gets_every_link() -> None:
    links = offer_links(_catalog(), 10, 7, BASE)
    pixel = f"{BASE}/imp?offer_id=10&pid=7&imp_id={{imp_id}}{SUBS}"
    assert links["impressions"] == {
        "pixel_url": pixel,
        "pixel_img": f'<img src="{pixel.replace("&", "&amp;")}" width="1" height="1" alt="" />',
        "link": f"{BASE}/imp?offer_id=10&pid=7",
    }
    assert links["click"] == {
        "link": f"{BASE}/click?offer_id=10&pid=7&aimp_id={{aimp_id}}&imp_id={{imp_id}}{SUBS}"
    }
    tail = "&action_id={action_id}&goal={goal}&sum={sum}&status={status}"
    assert links["postbacks"] == {
        "view_through": f"{BASE}/postback?aimp_id={{aimp_id}}{tail}",
        "click": f"{BASE}/postback?clickid={{clickid}}{tail}",
    }
    assert links["warnings"] == []


def test_an_offer_with_a_token_asks_for_secure() -> None:
    postbacks = offer_links(_catalog(), 11, 7, BASE)["postbacks"]
    assert all(url.endswith("&secure={secure}") for url in postbacks.values())


def test_an_offer_without_impressions_says_so_instead_of_a_pixel() -> None:
    links = offer_links(_catalog(), 12, 7, BASE)
    assert links["impressions"] == {
        "unavailable": "offer 12 does not take impressions (allow_impressions is false): "
        "a pixel would always be rejected"
    }
    assert links["click"]["link"].startswith(f"{BASE}/click?offer_id=12&pid=7")


def test_an_affiliate_not_approved_gets_the_links_and_a_warning() -> None:
    links = offer_links(_catalog(), 11, 8, BASE)
    reason = RejectionReason.AFFILIATE_NOT_APPROVED
    assert links["warnings"] == [
        f"events would be rejected today as affiliate_not_approved: {EXPLANATIONS[reason]}"
    ]
    assert "pixel_url" in links["impressions"]


@pytest.mark.parametrize(("offer", "pid", "field"), [(99, 7, "id"), (10, 99, "pid")])
def test_an_unknown_offer_or_affiliate_is_a_404(offer: int, pid: int, field: str) -> None:
    with pytest.raises(UnknownEntity) as caught:
        offer_links(_catalog(), offer, pid, BASE)
    assert caught.value.field == field


@pytest.mark.parametrize(
    ("raw", "says"), [(None, "is required"), ("٣", "whole number"), ("0", "whole number")]
)
def test_the_pid_parameter_is_checked(raw: str | None, says: str) -> None:
    with pytest.raises(CatalogError, match=says):
        parse_pid(raw)


def test_links_use_the_public_base_url_or_the_edges_address() -> None:
    env = {"IMPTRACK_HOME": "/tmp/x", "EDGE_PORT": "8081"}
    assert Settings.from_env(env).links_base_url == "http://127.0.0.1:8081"
    public = Settings.from_env({**env, "PUBLIC_BASE_URL": "https://t.example/"})
    assert public.links_base_url == "https://t.example"
    with pytest.raises(ConfigurationError, match=r"PUBLIC_BASE_URL='t\.example' must be an http"):
        Settings.from_env({**env, "PUBLIC_BASE_URL": "t.example"})
