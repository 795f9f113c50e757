"""Offers that take view-through conversions from anyone, and what the network does
about them.

A view-through postback names an impression by its ``aimp_id``. That ID is no
secret: it reaches the advertiser's impressions URL, its logs and whoever they share
them with. An offer that checks neither a ``secure`` hash (``postback_token``) nor
the sender's address (``postback_ip_whitelist``) therefore pays out for a conversion
posted by anyone who learns one. Every catalog change that leaves an offer so is
answered with a warning, or refused when the network sets
``POSTBACK_SECURITY_REQUIRED``. The admin API and ``imptrack catalog apply`` both
ask this module; the edge and the workers never do, so an offer saved before the
setting keeps working (docs/SECURITY.md).
"""

from __future__ import annotations

from app.catalog.model import Catalog, Offer
from app.exceptions import CatalogError

SETTING = "POSTBACK_SECURITY_REQUIRED"

_HOW_TO_FIX = "set postback_token (postbacks must then carry secure) or postback_ip_whitelist"


def takes_view_through_from_anyone(offer: Offer) -> bool:
    """Whether anyone who learns one of the offer's ``aimp_id`` values can post a
    conversion for it.

    Only an active offer takes postbacks at all, and only one with
    ``allow_impressions`` records the impressions they name. Advertisers have no
    token or whitelist of their own in this catalog: the offer's two fields are all
    a postback is checked against (app.attribution.matching).
    """
    return (
        offer.status == "active"
        and offer.allow_impressions
        and offer.postback_token is None
        and not offer.postback_ip_whitelist
    )


def warning(offer: Offer) -> str:
    """One line for the operator: which offer, what it lacks, why it matters, the fix."""
    return (
        f"offer {offer.id} takes view-through conversions with neither a postback token "
        "nor an IP whitelist: anyone who learns an aimp_id can post a conversion for it; "
        f"{_HOW_TO_FIX}"
    )


def require_protection(offer: Offer) -> None:
    """Refuse a change that leaves ``offer`` taking view-through conversions from
    anyone (the network's ``POSTBACK_SECURITY_REQUIRED``)."""
    if takes_view_through_from_anyone(offer):
        raise CatalogError(
            "postback_token",
            f"offer {offer.id} takes view-through conversions, and this network requires "
            f"a postback_token or a postback_ip_whitelist for them ({SETTING}): without "
            "either, anyone who learns an aimp_id can post a conversion for it; set one, "
            "or turn allow_impressions off if the offer should take no view-through "
            "conversions",
        )


def judge(offer: Offer, required: bool) -> list[str]:
    """The warnings for a change that leaves ``offer`` as it is (none unless it takes
    view-through conversions from anyone); with ``required`` such a change is refused
    instead."""
    if required:
        require_protection(offer)
    return [warning(offer)] if takes_view_through_from_anyone(offer) else []


def catalog_warnings(catalog: Catalog, required: bool) -> list[str]:
    """A warning for every offer in ``catalog`` that takes view-through conversions from
    anyone, by id. With ``required`` these are offers saved where the setting was not
    in force: they are kept (refusing postbacks an advertiser already sends would
    break a running campaign), and each line says a change leaving it so is refused."""
    kept = (
        f"; saved where {SETTING} was not in force, it still takes them, but any "
        "change that leaves it so is refused"
        if required
        else ""
    )
    return [
        warning(offer) + kept
        for _, offer in sorted(catalog.offers.items())
        if takes_view_through_from_anyone(offer)
    ]
