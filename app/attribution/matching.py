"""Attributing a postback to the click or impression it names, and what it earns.

The checks run in the order an advertiser's engineer would fix them: which click or
impression, whether the offer takes postbacks at all, whether the sender may send
them (IP whitelist, then ``secure``), whether the conversion is still in time, and
whether the offer pays for its goal. The first that fails is the answer.
"""

from __future__ import annotations

from app.attribution.params import PostbackRefused, PostbackRequest, RefusalKind
from app.attribution.payments import cpa_earning, offer_currency
from app.attribution.security import ip_allowed, secure_matches
from app.catalog.model import Catalog, Offer
from app.events.records import SUB_FIELDS, Click, Conversion, Impression, Postback
from app.ids import id_ms

CLICK = "click"
VIEW_THROUGH = "view_through"
ATTRIBUTIONS = (CLICK, VIEW_THROUGH)


def _in_time(
    offer: Offer, request: PostbackRequest, source: Click | Impression, at_ms: int
) -> None:
    age_ms = at_ms - id_ms(source.clickid if isinstance(source, Click) else source.aimp_id)
    if isinstance(source, Click):
        if age_ms > offer.click_session * 1000:
            raise PostbackRefused(
                f"click session expired: click {request.clickid} was {age_ms / 1000:.0f} s "
                f"before this postback; offer {offer.id} accepts conversions for "
                f"{offer.click_session} s after a click (click_session)",
                RefusalKind.EXPIRED,
            )
    elif age_ms > offer.view_through_window * 1000:
        raise PostbackRefused(
            f"impression lifespan expired: impression {request.aimp_id} was "
            f"{age_ms / 1000:.0f} s before this postback; offer {offer.id} attributes "
            f"conversions for {offer.view_through_window} s after an impression "
            "(view_through_window)",
            RefusalKind.EXPIRED,
        )


def _offer_open(catalog: Catalog, offer_id: int) -> Offer:
    offer = catalog.offers.get(offer_id)
    if offer is None or offer.status == "deleted":
        raise PostbackRefused(
            f"offer {offer_id} is deleted; it takes no more postbacks", RefusalKind.OFFER_NOT_ACTIVE
        )
    if offer.status != "active":
        raise PostbackRefused(
            f"offer {offer_id} is not active (it is {offer.status}); postbacks are accepted "
            "for active offers only",
            RefusalKind.OFFER_NOT_ACTIVE,
        )
    return offer


def _sender_allowed(offer: Offer, request: PostbackRequest, ip: str | None) -> None:
    if offer.postback_ip_whitelist and not ip_allowed(ip or "", offer.postback_ip_whitelist):
        raise PostbackRefused(
            f"source IP {ip} is not in offer {offer.id}'s postback IP whitelist",
            RefusalKind.IP_NOT_ALLOWED,
        )
    if offer.postback_token is None:
        return
    identifier = request.matched_id
    signed = f"'{identifier}:{request.action_id or ''}'"
    if request.secure is None:
        raise PostbackRefused(
            f"secure is required by offer {offer.id}: send the lowercase hex HMAC-SHA256 "
            f"of {signed} keyed with the offer's postback token",
            RefusalKind.BAD_SECURE,
        )
    if not secure_matches(offer.postback_token, identifier, request.action_id, request.secure):
        raise PostbackRefused(
            f"secure does not match: offer {offer.id} expects the lowercase hex "
            f"HMAC-SHA256 of {signed} keyed with its postback token",
            RefusalKind.BAD_SECURE,
        )


def attribute(
    request: PostbackRequest,
    postback: Postback,
    source: Click | Impression | None,
    catalog: Catalog,
) -> Conversion:
    """The conversion ``postback`` makes, attributed to ``source`` (the click named
    by ``clickid``, else the impression named by ``aimp_id``, None when there is no
    such click or impression), judged by ``catalog`` in force at the postback's
    time. Raises :class:`PostbackRefused` with the reason otherwise."""
    if source is None:
        if request.clickid is not None:
            raise PostbackRefused(
                f"unknown clickid {request.clickid}: no click with this ID was tracked",
                RefusalKind.UNKNOWN_ID,
            )
        raise PostbackRefused(
            f"unknown aimp_id {request.aimp_id}: no impression with this ID was tracked",
            RefusalKind.UNKNOWN_ID,
        )
    # A replay is judged as of its original: the windows from the time the advertiser
    # sent it, not from the replay's.
    at_ms = id_ms(postback.original_id)
    offer = _offer_open(catalog, source.offer_id)
    _sender_allowed(offer, request, postback.ip)
    _in_time(offer, request, source, at_ms)
    earning = cpa_earning(offer, request.goal, source.pid)
    goals = sorted({p.goal for p in offer.payments if p.type == "CPA"})
    if earning is None and goals:
        raise PostbackRefused(
            f"goal {request.goal!r} is not paid by offer {offer.id} "
            f"(its goals: {', '.join(goals)})",
            RefusalKind.GOAL_NOT_PAID,
        )
    if isinstance(source, Click):
        attribution, clickid, aimp_id = CLICK, source.clickid, source.aimp_id
        event_ms = id_ms(source.clickid)
    else:
        attribution, clickid, aimp_id = VIEW_THROUGH, None, source.aimp_id
        event_ms = id_ms(source.aimp_id)
    return Conversion(
        conversion_id=postback.postback_id,
        revision=1,
        postback_id=postback.postback_id,
        offer_id=offer.id,
        pid=source.pid,
        advertiser_id=offer.advertiser_id,
        attribution=attribution,
        goal=request.goal,
        status=request.status,
        revenue=str(earning.revenue) if earning else "0",
        payout=str(earning.payout) if earning else "0",
        currency=earning.currency if earning else offer_currency(offer),
        event_ms=event_ms,
        created_ms=at_ms,
        updated_ms=at_ms,
        aimp_id=aimp_id,
        clickid=clickid,
        action_id=request.action_id,
        sum=None if request.sum is None else str(request.sum),
        imp_id=source.imp_id,
        custom_fields=request.custom_fields or None,
        **{name: getattr(source, name) for name in SUB_FIELDS},
    )
