"""Records carried on the event topics, typed, with an explicit serializer."""

from __future__ import annotations

from typing import Any

import faust

SUB_FIELDS = tuple(f"sub{n}" for n in range(1, 9))


class Impression(faust.Record, serializer="json"):
    """One impression as the edge accepted it.

    ``aimp_id`` carries the acceptance time (see :mod:`app.ids`), so there is no
    separate timestamp field to disagree with it.
    """

    aimp_id: str
    offer_id: int
    pid: int
    imp_id: str | None = None
    sub1: str | None = None
    sub2: str | None = None
    sub3: str | None = None
    sub4: str | None = None
    sub5: str | None = None
    sub6: str | None = None
    sub7: str | None = None
    sub8: str | None = None
    ua: str | None = None
    ip: str | None = None


class RejectedImpression(faust.Record, serializer="json"):
    """An impression that was not tracked, and the rule it broke (a reason code of
    :class:`app.catalog.eligibility.RejectionReason`)."""

    aimp_id: str
    offer_id: int
    pid: int
    reason: str
    imp_id: str | None = None


class ForwardTask(faust.Record, serializer="json"):
    """One impression to deliver to one destination URL, already filled in.

    ``destination`` is the URL as configured (with its macros): with ``aimp_id`` it
    names the delivery, so a replayed task is recognised and not delivered again.
    """

    aimp_id: str
    offer_id: int
    pid: int
    advertiser_id: int
    destination: str
    url: str


class DeliveryAttempt(faust.Record, serializer="json"):
    """One attempt to deliver a :class:`ForwardTask`, and what came of it.

    ``outcome`` is one of :data:`app.forwarding.outcomes.OUTCOMES`; ``status`` is the
    HTTP status when the destination answered, ``error`` says what went wrong
    otherwise (or why the status was not a success).
    """

    aimp_id: str
    offer_id: int
    pid: int
    advertiser_id: int
    destination: str
    url: str
    attempt: int
    at_ms: int
    latency_ms: float
    outcome: str
    status: int | None = None
    error: str | None = None


class Click(faust.Record, serializer="json"):
    """One click the edge accepted and redirected to the offer's tracking URL.

    ``clickid`` carries the click's time (see :mod:`app.ids`). ``aimp_id`` is the
    impression the click followed, when one was found; ``link`` says how
    (:data:`app.clicks.links.LINKS`), or why not.
    """

    clickid: str
    offer_id: int
    pid: int
    advertiser_id: int
    link: str
    aimp_id: str | None = None
    imp_id: str | None = None
    sub1: str | None = None
    sub2: str | None = None
    sub3: str | None = None
    sub4: str | None = None
    sub5: str | None = None
    sub6: str | None = None
    sub7: str | None = None
    sub8: str | None = None
    ua: str | None = None
    ip: str | None = None


class RejectedClick(faust.Record, serializer="json"):
    """A click that was not tracked, and the rule it broke."""

    clickid: str
    offer_id: int
    pid: int
    reason: str
    imp_id: str | None = None


def impression_payload(
    aimp_id: str,
    offer_id: int,
    pid: int,
    imp_id: str | None,
    subs: dict[str, str],
    ua: str | None,
    ip: str | None,
) -> dict[str, Any]:
    """The JSON object the edge produces; it decodes as an :class:`Impression`.

    The edge builds plain dicts rather than Record instances: it is the hottest
    path and has no use for Faust's model machinery.
    """
    payload: dict[str, Any] = {
        "aimp_id": aimp_id,
        "offer_id": offer_id,
        "pid": pid,
        "imp_id": imp_id,
        "ua": ua,
        "ip": ip,
    }
    for name in SUB_FIELDS:
        payload[name] = subs.get(name)
    return payload
