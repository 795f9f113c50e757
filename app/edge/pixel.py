"""``GET /imp``: the impression pixel and impression link."""

from __future__ import annotations

from aiohttp import web

from app.attribution.click_links import imp_id_partition
from app.catalog.eligibility import rejection_reason
from app.edge.client_ip import client_ip, user_agent
from app.edge.keys import API_KEY_GATE, CATALOG, IMPRESSIONS, SETTINGS
from app.edge.params import parse_pixel
from app.edge.producer import BrokerUnavailable
from app.edge.responses import invalid_parameter, unavailable
from app.events.records import impression_payload
from app.exceptions import InvalidParameter
from app.ids import id_ms

# The smallest transparent 1x1 GIF: 43 bytes.
TRANSPARENT_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00"
    b"\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
_GIF_HEADERS = {"Cache-Control": "no-store, no-cache, must-revalidate", "Pragma": "no-cache"}


async def pixel(request: web.Request) -> web.Response:
    """Accept one impression; the GIF means the broker has it."""
    try:
        wanted = parse_pixel(request.query)
    except InvalidParameter as exc:
        return invalid_parameter(exc)
    settings = request.app[SETTINGS]
    payload = impression_payload(
        offer_id=wanted.offer_id,
        pid=wanted.pid,
        imp_id=wanted.imp_id,
        subs=dict(wanted.subs),
        ua=user_agent(request),
        ip=client_ip(request, settings.edge_trusted_proxy_hops),
    )
    # The impression joins an open envelope, which gives it its aimp_id; the GIF
    # waits for the envelope's ack. One with an imp_id lives where a click naming
    # that imp_id looks for it.
    partition = None
    if wanted.imp_id:
        partition = imp_id_partition(
            wanted.offer_id, wanted.pid, wanted.imp_id, settings.topic_partitions
        )
    aimp_id, acked = request.app[IMPRESSIONS].add(payload, partition)
    try:
        await acked
    except BrokerUnavailable:
        return unavailable("the impression could not be stored; retry shortly")
    # The aimp_id is for the advertiser it is forwarded to: whoever learns it can post
    # a view-through conversion for it on an offer with no postback token. So is the
    # rejection reason, which tells a stranger which offers and affiliates exist.
    # Both go to the network's own people (the API key) and, on a network that
    # turned PIXEL_DEBUG on, to affiliates testing their links.
    if not (settings.pixel_debug or request.app[API_KEY_GATE].holds_key(request)):
        return web.Response(body=TRANSPARENT_GIF, content_type="image/gif", headers=_GIF_HEADERS)
    headers = {**_GIF_HEADERS, "X-Aimp-Id": aimp_id}
    # The worker decides, against the same catalog; the edge's early verdict lets an
    # affiliate debugging an impression link see at once why it is not tracked. It
    # judges by the catalog in force at the aimp_id's time, as the worker does: a
    # change that lands while the produce waits for its ack must not make the two
    # disagree (seen on Kafka, whose followers apply a change within milliseconds).
    reason = rejection_reason(
        request.app[CATALOG].catalog_at(id_ms(aimp_id)),
        wanted.offer_id,
        wanted.pid,
        impression=True,
    )
    if reason is not None:
        headers["X-Imptrack-Rejected"] = reason
    return web.Response(body=TRANSPARENT_GIF, content_type="image/gif", headers=headers)
