"""Records carried on the event topics, typed, with an explicit serializer."""

from __future__ import annotations

from typing import Any

import faust

from app.ids import is_valid_id

SUB_FIELDS = tuple(f"sub{n}" for n in range(1, 9))

IMPRESSION = "impression"
"""A delivery of a recorded impression to the advertiser's destination URL."""
AFFILIATE_POSTBACK = "affiliate_postback"
"""A delivery of a conversion's new status to the affiliate's postback URL."""


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
    # Set by the impressions agent on the recorded copy: what the impression earned
    # under the offer's CPM payment in force (decimal strings, price / 1000), and
    # the currency the offer counts in (app.attribution.payments.offer_currency).
    revenue: str | None = None
    payout: str | None = None
    currency: str | None = None
    # The offer's advertiser at the impression's time, for the Advertiser slices.
    advertiser_id: int | None = None


class RejectedImpression(faust.Record, serializer="json"):
    """An impression that was not tracked, and the rule it broke (a reason code of
    :class:`app.catalog.eligibility.RejectionReason`)."""

    aimp_id: str
    offer_id: int
    pid: int
    reason: str
    imp_id: str | None = None
    advertiser_id: int | None = None  # None: the offer is unknown


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
    kind: str = IMPRESSION


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
    kind: str = IMPRESSION


class AffiliatePostbackTask(faust.Record, serializer="json"):
    """One revision of a conversion (its creation or a change of its status) to
    notify one affiliate postback URL of, already filled in.

    ``destination`` is the URL as configured (with its macros): with
    ``conversion_id`` and ``revision`` it names the delivery, so a replayed task is
    recognised and not delivered again. ``postback_id`` is the advertiser's postback
    that made this revision; ``conversion_status`` and ``payout`` are what the URL
    was filled with.
    """

    conversion_id: str
    revision: int
    postback_id: str
    offer_id: int
    pid: int
    advertiser_id: int
    conversion_status: int
    payout: str
    currency: str
    goal: str
    destination: str
    url: str
    action_id: str | None = None
    kind: str = AFFILIATE_POSTBACK


class AffiliatePostbackAttempt(faust.Record, serializer="json"):
    """One attempt to deliver an :class:`AffiliatePostbackTask`, and what came of it
    (``outcome``, ``status`` and ``error`` as for :class:`DeliveryAttempt`)."""

    conversion_id: str
    revision: int
    postback_id: str
    offer_id: int
    pid: int
    advertiser_id: int
    conversion_status: int
    payout: str
    currency: str
    goal: str
    destination: str
    url: str
    attempt: int
    at_ms: int
    latency_ms: float
    outcome: str
    action_id: str | None = None
    status: int | None = None
    error: str | None = None
    kind: str = AFFILIATE_POSTBACK


class Click(faust.Record, serializer="json"):
    """One click the edge accepted and redirected to the offer's tracking URL.

    ``clickid`` carries the click's time (see :mod:`app.ids`). ``aimp_id`` is the
    impression the click followed, when one was found; ``link`` says how
    (:data:`app.attribution.click_links.LINKS`), or why not.
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
    currency: str | None = None  # the offer's currency, for the slices


class RejectedClick(faust.Record, serializer="json"):
    """A click that was not tracked, and the rule it broke."""

    clickid: str
    offer_id: int
    pid: int
    reason: str
    imp_id: str | None = None
    advertiser_id: int | None = None  # None: the offer is unknown


def impression_payload(
    offer_id: int,
    pid: int,
    imp_id: str | None,
    subs: dict[str, str],
    ua: str | None,
    ip: str | None,
) -> dict[str, Any]:
    """An impression as the edge puts it in an envelope (which gives it its
    ``aimp_id``); it decodes as an :class:`Impression`.

    The edge builds plain dicts rather than Record instances: it is the hottest
    path and has no use for Faust's model machinery.
    """
    payload: dict[str, Any] = {
        "offer_id": offer_id,
        "pid": pid,
        "imp_id": imp_id,
        "ua": ua,
        "ip": ip,
    }
    for name in SUB_FIELDS:
        payload[name] = subs.get(name)
    return payload


def rejected_click_payload(
    clickid: str,
    offer_id: int,
    pid: int,
    reason: str,
    imp_id: str | None,
    advertiser_id: int | None,
) -> dict[str, Any]:
    """The JSON object the edge produces for a click it did not track; it decodes as
    a :class:`RejectedClick`."""
    return {
        "clickid": clickid,
        "offer_id": offer_id,
        "pid": pid,
        "reason": reason,
        "imp_id": imp_id,
        "advertiser_id": advertiser_id,
    }


def postback_payload(
    postback_id: str,
    method: str,
    params: dict[str, str],
    ip: str | None,
    reply_to: str | None,
    problem: str | None,
    replay_of: str | None = None,
) -> dict[str, Any]:
    """The JSON object the edge produces for a postback (and ``imptrack postbacks
    replay`` for one sent again); it decodes as a :class:`Postback`."""
    payload = {
        "postback_id": postback_id,
        "method": method,
        "params": params,
        "ip": ip,
        "reply_to": reply_to,
        "problem": problem,
    }
    if replay_of is not None:
        payload["replay_of"] = replay_of
    return payload


class Postback(faust.Record, serializer="json"):
    """A postback as the edge received it, before anything was decided about it.

    ``params`` are the request's parameters as sent (query, form or JSON values,
    as text); ``problem`` is what the edge could not read (a body that is not JSON,
    a repeated parameter), which refuses the postback. ``reply_to`` is the Redis
    channel of the edge process waiting for the verdict.
    """

    postback_id: str
    method: str
    params: dict[str, str]
    ip: str | None = None
    reply_to: str | None = None
    problem: str | None = None
    # The refused postback this one sends again (app/attribution/replay.py): judged by
    # today's catalog, but by its original's time and as its original's action.
    replay_of: str | None = None

    @property
    def original_id(self) -> str:
        """The ID of the postback as the advertiser sent it: this one's, or for a
        replay its original's (only a well-formed ID counts)."""
        replayed = self.replay_of
        return replayed if isinstance(replayed, str) and is_valid_id(replayed) else self.postback_id


class Conversion(faust.Record, serializer="json"):
    """A conversion and its current state; ``revision`` grows with each status change
    (``status``: an :class:`app.events.statuses.ConversionStatus` number).

    ``conversion_id`` is the ID of the postback that created it. Money is decimal
    text (revenue and payout of the offer's CPA payment for ``goal``); ``sum`` is
    the amount the advertiser reported, kept as sent. ``event_ms`` is when the click
    or impression it is attributed to happened; ``created_ms`` and ``updated_ms``
    are the times of the postbacks that created and last changed it.
    """

    conversion_id: str
    revision: int
    postback_id: str
    offer_id: int
    pid: int
    advertiser_id: int
    attribution: str
    goal: str
    status: int
    revenue: str
    payout: str
    currency: str
    event_ms: int
    created_ms: int
    updated_ms: int
    aimp_id: str | None = None
    clickid: str | None = None
    action_id: str | None = None
    sum: str | None = None
    imp_id: str | None = None  # the affiliate's, of the impression or click converted
    sub1: str | None = None
    sub2: str | None = None
    sub3: str | None = None
    sub4: str | None = None
    sub5: str | None = None
    sub6: str | None = None
    sub7: str | None = None
    sub8: str | None = None
    custom_fields: dict[str, str] | None = None


class MatchedPostback(faust.Record, serializer="json"):
    """A postback matched to its click or impression, on its way to the conversions
    agent, which knows the offer's earlier conversions: ``conversion`` is what it
    becomes if its ``action_id`` is new."""

    postback: Postback
    conversion: Conversion


class PostbackOutcome(faust.Record, serializer="json"):
    """What became of one postback, for the Server postbacks slice and the edge.

    ``status`` is the answer's, a :class:`app.events.statuses.PostbackStatus`
    (``error`` says why a postback was refused); the conversion's statuses are
    :class:`app.events.statuses.ConversionStatus` numbers.
    ``outcome`` is ``created``, ``updated`` (a repeated action_id changed the
    conversion's status) or ``refused``.
    """

    postback_id: str
    method: str
    params: dict[str, str]
    status: int
    outcome: str
    ip: str | None = None
    error: str | None = None
    conversion_id: str | None = None
    conversion_status: int | None = None
    previous_status: int | None = None
    attribution: str | None = None
    offer_id: int | None = None
    pid: int | None = None
    goal: str | None = None
    advertiser_id: int | None = None
    # The conversion's revision this postback made (accepted ones), so a replay
    # republishes that revision and its affiliate postbacks, not a later one's.
    revision: int | None = None
    # What kind of error refused it (app.attribution.params.RefusalKind): a bounded
    # set to count by; outcomes decided before it existed have none.
    error_kind: str | None = None
    # The postback that this one sent again (``Postback.replay_of``), if it is a replay.
    replay_of: str | None = None
