"""Affiliate postbacks: whom a conversion's status is posted back to, when, and
with what (Affise's macros).

The rules, written out for users in docs/REPORTING.md ("Affiliate postbacks"):

- Every revision of a conversion is notified: its creation (with the status it was
  created with, declined included) and each change of its status. A postback that
  changes nothing (a duplicate ``action_id`` with the same status, a refused one)
  makes no revision, so it notifies nothing.
- The URLs are the offer's ``affiliate_postbacks`` naming the affiliate, else the
  offer's that name no affiliate, else the affiliate's own ``postback_urls``: the
  catalog in force when the advertiser's postback arrived.
- A URL with ``statuses`` is notified only of those; without, of every status.
- ``{payout}`` is the conversion's payout to the affiliate, 0 when it is declined.

The conversions agent calls :func:`affiliate_postback_tasks` for each revision it
publishes; a revision published again (a replay) gives the same tasks, which the
delivery schedule recognises and does not send twice.
"""

from __future__ import annotations

from functools import lru_cache

from app.catalog.model import AffiliatePostback, Catalog
from app.events.records import SUB_FIELDS, AffiliatePostbackTask, Conversion
from app.events.statuses import ConversionStatus
from app.forwarding.templates import UrlTemplate

TEMPLATE_CACHE_SIZE = 4096


def postback_urls_for(catalog: Catalog, offer_id: int, pid: int) -> tuple[AffiliatePostback, ...]:
    """The postback URLs of affiliate ``pid`` for conversions of offer ``offer_id``:
    the offer's overrides for it, else the offer's overrides for all, else its own."""
    offer = catalog.offers.get(offer_id)
    overrides = offer.affiliate_postbacks if offer is not None else ()
    personal = tuple(p for p in overrides if pid in p.affiliates)
    if personal:
        return personal
    for_all = tuple(p for p in overrides if not p.affiliates)
    if for_all:
        return for_all
    affiliate = catalog.affiliates.get(pid)
    return affiliate.postback_urls if affiliate is not None else ()


def notifies(postback: AffiliatePostback, status: int) -> bool:
    """Whether ``postback`` is for conversions of ``status`` (all, without statuses)."""
    return not postback.statuses or ConversionStatus(status).label in postback.statuses


def notified_payout(conversion: Conversion) -> str:
    """What the affiliate is told it earns: nothing for a declined conversion."""
    return "0" if conversion.status == ConversionStatus.DECLINED else conversion.payout


def macro_values(conversion: Conversion) -> dict[str, object]:
    """Each macro of an affiliate postback URL, for this revision of ``conversion``."""
    values: dict[str, object] = {
        "clickid": conversion.clickid,
        "aimp_id": conversion.aimp_id,
        "impression_id": conversion.imp_id,
        "status": conversion.status,
        "payout": notified_payout(conversion),
        "currency": conversion.currency,
        "goal": conversion.goal,
        "action_id": conversion.action_id,
        "offer_id": conversion.offer_id,
        "pid": conversion.pid,
    }
    for name in SUB_FIELDS:
        values[name] = getattr(conversion, name)
    return values


@lru_cache(maxsize=TEMPLATE_CACHE_SIZE)
def _template(url: str) -> UrlTemplate:
    return UrlTemplate.compile(url)


def affiliate_postback_tasks(
    conversion: Conversion, catalog: Catalog
) -> list[AffiliatePostbackTask]:
    """The postbacks to send the affiliate for this revision of ``conversion``, by
    the catalog in force when it was made."""
    values = macro_values(conversion)
    return [
        AffiliatePostbackTask(
            conversion_id=conversion.conversion_id,
            revision=conversion.revision,
            postback_id=conversion.postback_id,
            offer_id=conversion.offer_id,
            pid=conversion.pid,
            advertiser_id=conversion.advertiser_id,
            conversion_status=conversion.status,
            payout=notified_payout(conversion),
            currency=conversion.currency,
            goal=conversion.goal,
            destination=postback.url,
            url=_template(postback.url).fill(values),
            action_id=conversion.action_id,
        )
        for postback in postback_urls_for(catalog, conversion.offer_id, conversion.pid)
        if notifies(postback, conversion.status)
    ]
