"""The links an offer's affiliate and advertiser need, generated as Affise shows
them: the impression pixel and link (the affiliate's), the click tracking link
with the placeholders the affiliate fills in, and the advertiser's postback URL
templates. ``GET /api/v1/offers/{id}/links?pid=`` and ``imptrack links`` give them."""

from __future__ import annotations

from html import escape
from typing import Any

from app.catalog.eligibility import EXPLANATIONS, RejectionReason, rejection_reason
from app.catalog.model import Catalog
from app.catalog.validation import id_from_text
from app.events.records import SUB_FIELDS
from app.exceptions import CatalogError, UnknownEntity

# Placeholders the affiliate replaces with its own values (Affise's spelling).
_AFFILIATE_PARAMS = "&imp_id={imp_id}" + "".join(f"&{s}={{{s}}}" for s in SUB_FIELDS)
# Placeholders the advertiser's system fills in when it sends a postback.
_POSTBACK_PARAMS = "&action_id={action_id}&goal={goal}&sum={sum}&status={status}"


def offer_links(catalog: Catalog, offer_id: int, pid: int, base_url: str) -> dict[str, Any]:
    """Every link of ``offer_id`` for affiliate ``pid``. An offer that takes no
    impressions gets the reason instead of a pixel that would always be rejected;
    warnings say what else would make its events rejected today."""
    offer = catalog.offers.get(offer_id)
    if offer is None:
        raise UnknownEntity("id", f"there is no offer {offer_id}")
    if pid not in catalog.affiliates:
        raise UnknownEntity("pid", f"there is no affiliate {pid}")
    ids = f"offer_id={offer_id}&pid={pid}"
    links: dict[str, Any] = {"offer_id": offer_id, "pid": pid, "base_url": base_url}
    warnings = []
    impression_reason = rejection_reason(catalog, offer_id, pid, impression=True)
    if impression_reason is RejectionReason.IMPRESSIONS_NOT_ALLOWED:
        links["impressions"] = {
            "unavailable": f"offer {offer_id} does not take impressions "
            "(allow_impressions is false): a pixel would always be rejected"
        }
    else:
        pixel = f"{base_url}/imp?{ids}{_AFFILIATE_PARAMS}"
        links["impressions"] = {
            "pixel_url": pixel,
            "pixel_img": f'<img src="{escape(pixel)}" width="1" height="1" alt="" />',
            "link": f"{base_url}/imp?{ids}",
        }
    links["click"] = {
        "link": f"{base_url}/click?{ids}&aimp_id={{aimp_id}}{_AFFILIATE_PARAMS}",
    }
    postbacks = {
        "view_through": f"{base_url}/postback?aimp_id={{aimp_id}}{_POSTBACK_PARAMS}",
        "click": f"{base_url}/postback?clickid={{clickid}}{_POSTBACK_PARAMS}",
    }
    if offer.postback_token:
        # The HMAC-SHA256 of "<id>:<action_id>" keyed with the offer's token (README).
        postbacks = {kind: f"{url}&secure={{secure}}" for kind, url in postbacks.items()}
    links["postbacks"] = postbacks
    click_reason = rejection_reason(catalog, offer_id, pid, impression=False)
    for reason in dict.fromkeys(r for r in (impression_reason, click_reason) if r is not None):
        if reason is not RejectionReason.IMPRESSIONS_NOT_ALLOWED:
            warnings.append(
                f"events would be rejected today as {reason.value}: {EXPLANATIONS[reason]}"
            )
    links["warnings"] = warnings
    return links


def links_text(links: dict[str, Any]) -> str:
    """The links as ``imptrack links`` and the demo print them."""
    lines = [f"Offer {links['offer_id']}, affiliate {links['pid']} ({links['base_url']})", ""]
    impressions = links["impressions"]
    if "unavailable" in impressions:
        lines.append(f"Impressions: {impressions['unavailable']}")
    else:
        lines += [
            f"Impression pixel (URL):  {impressions['pixel_url']}",
            f"Impression pixel (HTML): {impressions['pixel_img']}",
            f"Impression link:         {impressions['link']}",
        ]
    lines += [
        f"Click tracking link:     {links['click']['link']}",
        f"Postback, view-through:  {links['postbacks']['view_through']}",
        f"Postback, click:         {links['postbacks']['click']}",
    ]
    lines += [f"\nwarning: {warning}" for warning in links["warnings"]]
    return "\n".join(lines)


def parse_pid(raw: str | None) -> int:
    """The affiliate of ``?pid=``: required, digits 0-9 only."""
    if raw is None or raw == "":
        raise CatalogError("pid", "is required: the affiliate whose links these are (?pid=7)")
    return id_from_text(raw, "pid")
