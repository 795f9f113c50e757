"""``GET /click``: the tracking link. Judge, link to the impression, record, redirect."""

from __future__ import annotations

import orjson
from aiohttp import web

from app.attribution.click_redirects import location
from app.attribution.payments import offer_currency
from app.catalog.eligibility import EXPLANATIONS, RejectionReason, rejection_reason
from app.edge.client_ip import client_ip, user_agent
from app.edge.keys import CATALOG, LINKS, PLACEMENT, PRODUCER, SETTINGS
from app.edge.params import parse_click
from app.edge.producer import BrokerUnavailable
from app.edge.responses import NO_STORE, invalid_parameter, unavailable
from app.events import kinds
from app.events.records import SUB_FIELDS, rejected_click_payload
from app.exceptions import InvalidParameter
from app.ids import id_ms
from app.metrics import pipeline as metrics

_NOT_FOUND = (RejectionReason.OFFER_UNKNOWN, RejectionReason.AFFILIATE_UNKNOWN)


async def click(request: web.Request) -> web.StreamResponse:
    """A 302 to the offer's tracking URL once the broker has the click; an ineligible
    click goes to the offer's trafficback URL or gets a 4xx with its reason."""
    try:
        wanted = parse_click(request.query)
    except InvalidParameter as exc:
        return invalid_parameter(exc)
    settings = request.app[SETTINGS]
    catalog = request.app[CATALOG].catalog
    producer = request.app[PRODUCER]
    placement = request.app[PLACEMENT]
    partition = placement.next_partition()
    clickid = placement.ids.new_id(partition=partition)
    values: dict[str, object] = {
        "clickid": clickid,
        "offer_id": wanted.offer_id,
        "pid": wanted.pid,
        "impression_id": wanted.imp_id,
        "ua": user_agent(request),
        "ip": client_ip(request, settings.edge_trusted_proxy_hops),
        "time": id_ms(clickid) // 1000,
        **wanted.subs,
    }
    offer = catalog.offers.get(wanted.offer_id)
    reason = rejection_reason(catalog, wanted.offer_id, wanted.pid, impression=False)
    if reason is not None:
        rejected = rejected_click_payload(
            clickid,
            wanted.offer_id,
            wanted.pid,
            reason.value,
            wanted.imp_id,
            None if offer is None else offer.advertiser_id,
        )
        try:
            await producer.produce(
                kinds.REJECTED_CLICKS.topic, clickid, orjson.dumps(rejected), partition
            )
        except BrokerUnavailable:
            return unavailable("the click could not be stored; retry shortly")
        metrics.rejected("click", reason.value)
        headers = {**NO_STORE, "X-Imptrack-Rejected": reason.value}
        if offer is not None and offer.trafficback_url:
            headers["Location"] = location(offer.trafficback_url, values)
            return web.Response(status=302, headers=headers)
        return web.json_response(
            {"error": f"click not tracked: {EXPLANATIONS[reason]}", "reason": reason.value},
            status=404 if reason in _NOT_FOUND else 403,
            headers=headers,
        )
    if offer is None or offer.tracking_url is None:
        # rejection_reason refuses both (offer_unknown, no_tracking_url) before here.
        raise RuntimeError(f"offer {wanted.offer_id} was judged eligible with no tracking URL")
    # An aimp_id the network never issued names no impression: not worth a lookup.
    named = placement.named(wanted.aimp_id) if wanted.aimp_id else None
    link = await request.app[LINKS].find(
        wanted.offer_id,
        wanted.pid,
        offer.view_through_window,
        id_ms(clickid),
        None if named is None or wanted.aimp_id is None else (wanted.aimp_id, named),
        wanted.imp_id,
    )
    values["aimp_id"] = link.aimp_id
    values["advertiser_id"] = offer.advertiser_id
    # A click that named its impression by aimp_id only still carries the affiliate's
    # imp_id of that impression, in the tracking URL and in the click's record.
    imp_id = wanted.imp_id or link.imp_id
    values["impression_id"] = imp_id
    payload = {
        "clickid": clickid,
        "offer_id": wanted.offer_id,
        "pid": wanted.pid,
        "advertiser_id": offer.advertiser_id,
        "link": link.how,
        "aimp_id": link.aimp_id,
        "imp_id": imp_id,
        "ua": values["ua"],
        "ip": values["ip"],
        "currency": offer_currency(offer),
        **{name: wanted.subs.get(name) for name in SUB_FIELDS},
    }
    try:
        await producer.produce(kinds.CLICKS.topic, clickid, orjson.dumps(payload), partition)
    except BrokerUnavailable:
        return unavailable("the click could not be stored; retry shortly")
    headers = {**NO_STORE, "Location": location(offer.tracking_url, values), "X-Clickid": clickid}
    return web.Response(status=302, headers=headers)
