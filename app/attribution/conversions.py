"""One advertiser action's conversion over time: created by its first postback,
its status changed by later ones, true repeats refused.

The conversions agent keeps a :class:`ActionState` per ``<offer_id>:<action_id>``
and decides every matched postback with :func:`decide`. A postback it has already
decided (the same ``postback_id``, read again after a worker crash) gets the same
outcome again, so a replay can neither create a second conversion nor turn its own
earlier acceptance into a "duplicate".
"""

from __future__ import annotations

from typing import Any

import faust

from app.attribution.params import RefusalKind
from app.events.records import Conversion, MatchedPostback, Postback, PostbackOutcome
from app.events.statuses import ConversionStatus, PostbackStatus
from app.ids import id_ms

CREATED = "created"
UPDATED = "updated"
REFUSED = "refused"

KEPT_OUTCOMES = 32
"""Outcomes remembered per action for replays; an action gets a few postbacks (one
per status change), so older ones are long committed."""


class ActionState(faust.Record, serializer="json"):
    """The conversion of one action and the outcome of each postback about it
    (``postback_id`` → the :class:`PostbackOutcome` as a dict)."""

    conversion: Conversion
    outcomes: dict[str, Any]


def action_key(offer_id: int, action_id: str | None, postback_id: str) -> str:
    """Where the postbacks of one action meet. Without an ``action_id`` every
    postback is an action of its own (nothing to deduplicate it against)."""
    if action_id is None:
        return f"{offer_id}:postback:{postback_id}"
    return f"{offer_id}:{action_id}"


def refusal(
    postback: Postback,
    error: str,
    kind: RefusalKind,
    offer_id: int | None = None,
    pid: int | None = None,
    conversion_id: str | None = None,
    advertiser_id: int | None = None,
) -> PostbackOutcome:
    """A refused postback's outcome, with the offer and affiliate when it got as far
    as its click or impression (so an offer's refusals can be listed)."""
    return PostbackOutcome(
        postback_id=postback.postback_id,
        method=postback.method,
        params=postback.params,
        ip=postback.ip,
        status=PostbackStatus.REFUSED,
        outcome=REFUSED,
        error=error,
        error_kind=kind.value,
        replay_of=postback.replay_of,
        offer_id=offer_id,
        pid=pid,
        conversion_id=conversion_id,
        advertiser_id=advertiser_id,
    )


def _accepted(
    postback: Postback, conversion: Conversion, outcome: str, previous: int | None
) -> PostbackOutcome:
    return PostbackOutcome(
        postback_id=postback.postback_id,
        method=postback.method,
        params=postback.params,
        ip=postback.ip,
        status=PostbackStatus.ACCEPTED,
        outcome=outcome,
        replay_of=postback.replay_of,
        conversion_id=conversion.conversion_id,
        conversion_status=conversion.status,
        previous_status=previous,
        attribution=conversion.attribution,
        offer_id=conversion.offer_id,
        pid=conversion.pid,
        goal=conversion.goal,
        advertiser_id=conversion.advertiser_id,
        revision=conversion.revision,
    )


def decide(
    state: ActionState | None, matched: MatchedPostback
) -> tuple[ActionState, PostbackOutcome, Conversion | None]:
    """The action's new state, the postback's outcome, and the conversion revision
    to publish (None when nothing about the conversion changed)."""
    postback, proposed = matched.postback, matched.conversion
    if state is not None and postback.postback_id in state.outcomes:
        # A replay: the same answer, and the conversion as this postback made it
        # (publishing it again is harmless, the exporter keeps the highest revision;
        # its affiliate postbacks were sent at most once, app.forwarding.schedule).
        outcome = PostbackOutcome.from_data(state.outcomes[postback.postback_id])
        if outcome.status != PostbackStatus.ACCEPTED:
            return state, outcome, None
        return state, outcome, _as_made_by(state.conversion, outcome)
    if state is None:
        conversion, previous, kind = proposed, None, CREATED
    elif state.conversion.status != proposed.status:
        current = state.conversion
        conversion = current.derive(
            revision=current.revision + 1,
            postback_id=postback.postback_id,
            status=proposed.status,
            updated_ms=id_ms(postback.postback_id),
        )
        previous, kind = current.status, UPDATED
    else:
        current = state.conversion
        outcome = refusal(
            postback,
            f"duplicate action_id {current.action_id!r} for offer {current.offer_id}: "
            f"conversion {current.conversion_id} already has status {current.status} "
            f"({ConversionStatus(current.status).label}); a postback with another status "
            "changes it",
            RefusalKind.DUPLICATE,
            offer_id=current.offer_id,
            pid=current.pid,
            conversion_id=current.conversion_id,
            advertiser_id=current.advertiser_id,
        )
        return _remember(state, current, outcome), outcome, None
    outcome = _accepted(postback, conversion, kind, previous)
    return _remember(state, conversion, outcome), outcome, conversion


def _as_made_by(current: Conversion, outcome: PostbackOutcome) -> Conversion:
    """The revision of ``current`` that the postback of ``outcome`` made. Revisions
    differ only in what a status change changes, so an earlier one is rebuilt from
    the latest; outcomes stored before they named their revision give the latest."""
    if outcome.revision is None or outcome.revision == current.revision:
        return current
    return current.derive(
        revision=outcome.revision,
        postback_id=outcome.postback_id,
        status=_accepted_status(outcome, outcome.conversion_status, "conversion_status"),
        updated_ms=id_ms(outcome.postback_id),
    )


def _remember(
    state: ActionState | None, conversion: Conversion, outcome: PostbackOutcome
) -> ActionState:
    outcomes = dict(state.outcomes) if state is not None else {}
    outcomes[outcome.postback_id] = outcome.asdict()
    while len(outcomes) > KEPT_OUTCOMES:
        del outcomes[next(iter(outcomes))]
    return ActionState(conversion=conversion, outcomes=outcomes)


def verdict(outcome: PostbackOutcome) -> dict[str, Any]:
    """The edge's JSON answer to the advertiser for ``outcome``."""
    if outcome.status != PostbackStatus.ACCEPTED:
        return {
            "status": PostbackStatus.REFUSED,
            "error": outcome.error,
            "postback_id": outcome.postback_id,
        }
    status = _accepted_status(outcome, outcome.conversion_status, "conversion_status")
    body: dict[str, Any] = {
        "status": PostbackStatus.ACCEPTED,
        "conversion_id": outcome.conversion_id,
        "postback_id": outcome.postback_id,
        "conversion_status": status.label,
        "attribution": outcome.attribution,
        "offer_id": outcome.offer_id,
        "goal": outcome.goal,
    }
    if outcome.outcome == UPDATED:
        previous = _accepted_status(outcome, outcome.previous_status, "previous_status")
        body["updated_from"] = previous.label
    return body


def _accepted_status(outcome: PostbackOutcome, value: int | None, name: str) -> ConversionStatus:
    """``value``, the ``conversion_status`` or (an update's) ``previous_status`` of an
    accepted ``outcome``: :func:`decide` always sets them, so a missing one is a
    record made by something else."""
    if value is None:
        raise ValueError(
            f"postback {outcome.postback_id} was accepted ({outcome.outcome}) but its "
            f"outcome record has no {name}"
        )
    return ConversionStatus(value)
