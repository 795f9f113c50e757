"""A postback's judgement, in the two pure steps around its table lookup.

The postbacks agent (agents/postbacks.py) reads what the postback names
(:func:`read_postback`), looks the click or impression up in its table, and then
judges it with what it found (:func:`judge_postback`): refused, or matched to the
conversion it makes, on its way to the conversions agent.
"""

from __future__ import annotations

from app.attribution.conversions import action_key, refusal
from app.attribution.matching import attribute
from app.attribution.params import PostbackRefused, PostbackRequest, RefusalKind, parse_postback
from app.catalog.model import Catalog
from app.events.records import Click, Impression, MatchedPostback, Postback, PostbackOutcome
from app.ids import IdSeal


def read_postback(postback: Postback, seal: IdSeal) -> PostbackRequest | PostbackOutcome:
    """What ``postback`` asks for, or its refusal when the edge could not read it or
    its parameters are wrong (``seal`` tells IDs this network issued from others)."""
    if postback.problem:
        return refusal(postback, postback.problem, RefusalKind.UNREADABLE)
    try:
        return parse_postback(postback.params, seal)
    except PostbackRefused as exc:
        return refusal(postback, str(exc), exc.kind)


def judge_postback(
    postback: Postback,
    request: PostbackRequest,
    source: Click | Impression | None,
    in_force: Catalog,
) -> tuple[str, MatchedPostback] | PostbackOutcome:
    """The matched postback and the key of the action it belongs to
    (:func:`app.attribution.conversions.action_key`), or its refusal.

    ``source`` is the click or impression it names (None: not found); ``in_force``
    the catalog in force when the edge received it, so a replay after a crash gets
    the same verdict."""
    try:
        conversion = attribute(request, postback, source, in_force)
    except PostbackRefused as exc:
        return refusal(
            postback,
            str(exc),
            exc.kind,
            offer_id=None if source is None else source.offer_id,
            pid=None if source is None else source.pid,
            advertiser_id=None if source is None else source.advertiser_id,
        )
    # A replay is its original's action: sent again twice, it is one conversion.
    key = action_key(conversion.offer_id, conversion.action_id, postback.original_id)
    return key, MatchedPostback(postback=postback, conversion=conversion)
