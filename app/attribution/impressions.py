"""What becomes of an impression the edge accepted: recorded with what it earns and
forwarded, or rejected with its reason. Pure: the impressions agent
(agents/impressions.py) calls it for each impression of a batch."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from app.attribution.payments import impression_earning
from app.catalog.eligibility import rejection_reason
from app.catalog.model import Catalog, Offer
from app.events.envelopes import Envelope
from app.events.kinds import FORWARD_TASK_ENVELOPE, RECORDED_ENVELOPE, REJECTED_ENVELOPE
from app.events.records import (
    IMPRESSION,
    SUB_FIELDS,
    ForwardTask,
    Impression,
    RejectedImpression,
)
from app.forwarding.plan import ForwardPlan, forward_plan, forward_task
from app.forwarding.split import BUCKETS, choose
from app.ids import id_ms, is_valid_id


@dataclass(frozen=True)
class Recorded:
    """A tracked impression: ``earning`` is the copy for export, with what it earned
    at the offer's CPM price; ``forward`` its delivery to the offer's impressions
    destination URL, if it has one."""

    impression: Impression
    earning: Impression
    forward: ForwardTask | None
    view_through_window: int
    """Seconds a click or postback may follow it (the offer's, at its time)."""


def judge_impression(in_force: Catalog, impression: Impression) -> Recorded | RejectedImpression:
    """Judge ``impression`` by ``in_force``, the catalog in force when the edge accepted
    it, so lag and replays do not change the verdict (app.catalog.history)."""
    reason = rejection_reason(in_force, impression.offer_id, impression.pid, impression=True)
    if reason is not None:
        judged = in_force.offers.get(impression.offer_id)
        return RejectedImpression(
            aimp_id=impression.aimp_id,
            offer_id=impression.offer_id,
            pid=impression.pid,
            reason=reason.value,
            imp_id=impression.imp_id,
            advertiser_id=None if judged is None else judged.advertiser_id,
        )
    offer = in_force.offers[impression.offer_id]
    earning = impression_earning(offer, impression.pid)
    return Recorded(
        impression=impression,
        earning=impression.derive(
            revenue=str(earning.revenue),
            payout=str(earning.payout),
            currency=earning.currency,
            advertiser_id=offer.advertiser_id,
        ),
        forward=forward_task(offer, impression),
        view_through_window=offer.view_through_window,
    )


@dataclass
class EnvelopeVerdicts:
    """What became of an envelope's impressions, as the envelopes the impressions
    agent writes (app.events.kinds), each None when it would be empty: the recorded
    impressions (also the envelope's table entry), the rejected ones and the forward
    tasks, in slot order."""

    recorded: bytes | None = None
    rejected: bytes | None = None
    forward: bytes | None = None
    counts: dict[str, int] = field(default_factory=dict)
    """How many impressions each output holds (``recorded``, ``forward``) and how
    many were rejected for each reason (``rejected:<reason>``): the metrics' figures,
    without decoding the envelopes again."""


_RECORDED = RECORDED_ENVELOPE.current
_REJECTED = REJECTED_ENVELOPE.current
_FORWARD = FORWARD_TASK_ENVELOPE.current
_EARNING_FIELDS = ("revenue", "payout", "currency", "advertiser_id")
_IMPRESSION_FIELDS = tuple(name for name in _RECORDED.fields if name not in _EARNING_FIELDS)
_MACRO_COLUMNS = {
    "pid": "pid",
    "impression_id": "imp_id",
    "aimp_id": "aimp_id",
    "ua": "ua",
    "ip": "ip",
    **{name: name for name in SUB_FIELDS},
}
"""Destination URL macros filled from an impression's column (app.forwarding.plan)."""


@dataclass(frozen=True)
class _Rejection:
    reason: str
    advertiser_id: int | None


@dataclass(frozen=True)
class _Recording:
    """What every impression of one offer and affiliate gets: judged, priced and
    planned once per envelope, not once per impression."""

    offer: Offer
    revenue: str
    payout: str
    currency: str
    plan: ForwardPlan | None
    single_destination: str | None
    """The plan's only destination, chosen without hashing the aimp_id."""
    macros: dict[str, frozenset[str]]
    """Each destination's macro names."""


def _terms(in_force: Catalog, offer_id: int, pid: int) -> _Recording | _Rejection:
    """What :func:`judge_impression` decides for every impression of ``offer_id`` by
    ``pid``, that does not depend on the impression itself."""
    reason = rejection_reason(in_force, offer_id, pid, impression=True)
    if reason is not None:
        judged = in_force.offers.get(offer_id)
        return _Rejection(reason.value, None if judged is None else judged.advertiser_id)
    offer = in_force.offers[offer_id]
    earning = impression_earning(offer, pid)
    plan = forward_plan(offer)
    single = None
    if plan is not None and len(plan.weighted) == 1 and plan.weighted[0][1] >= BUCKETS:
        single = plan.weighted[0][0]
    macros = {} if plan is None else {d: frozenset(t.macros) for d, t in plan.templates.items()}
    return _Recording(
        offer, str(earning.revenue), str(earning.payout), earning.currency, plan, single, macros
    )


def judge_envelope(in_force: Catalog, envelope: Envelope) -> EnvelopeVerdicts:
    """Judge every impression of ``envelope`` by ``in_force``, the catalog in force
    when its envelope was opened (its impressions' aimp_ids share that millisecond).

    The same verdicts, fields and forward tasks as :func:`judge_impression` gives
    each impression, made column by column: a faust Record per impression (made,
    derived, turned back into a dict) cost about 75 us of the worker's CPU each
    (py-spy, bench.pipeline), the envelope's event a few hundred for all of them."""
    column = envelope.columns
    aimp_ids, offer_ids, pids, imp_ids = (
        column["aimp_id"],
        column["offer_id"],
        column["pid"],
        column["imp_id"],
    )
    terms: dict[tuple[int, int], _Recording | _Rejection] = {}
    recorded: list[tuple[int, _Recording]] = []
    rejected: list[tuple[int, _Rejection]] = []
    for slot, offer_pid in enumerate(zip(offer_ids, pids, strict=True)):
        judged = terms.get(offer_pid)
        if judged is None:
            judged = terms[offer_pid] = _terms(in_force, *offer_pid)
        if isinstance(judged, _Recording):
            recorded.append((slot, judged))
        else:
            rejected.append((slot, judged))
    verdicts = EnvelopeVerdicts()
    verdicts.counts["recorded"] = len(recorded)
    for _, rejection in rejected:
        key = f"rejected:{rejection.reason}"
        verdicts.counts[key] = verdicts.counts.get(key, 0) + 1
    if recorded:
        if len(recorded) == len(aimp_ids):
            columns = {name: column[name] for name in _IMPRESSION_FIELDS}
        else:
            columns = {
                name: [column[name][slot] for slot, _ in recorded] for name in _IMPRESSION_FIELDS
            }
        columns["revenue"] = [t.revenue for _, t in recorded]
        columns["payout"] = [t.payout for _, t in recorded]
        columns["currency"] = [t.currency for _, t in recorded]
        columns["advertiser_id"] = [t.offer.advertiser_id for _, t in recorded]
        verdicts.recorded = _RECORDED.encode([columns[name] for name in _RECORDED.fields])
        forward = [_forward_row(column, slot, t) for slot, t in recorded if t.plan is not None]
        verdicts.counts["forward"] = len(forward)
        if forward:
            verdicts.forward = _FORWARD.encode_rows(forward)
    if rejected:
        verdicts.rejected = _REJECTED.encode_rows(
            [
                {
                    "aimp_id": aimp_ids[slot],
                    "offer_id": offer_ids[slot],
                    "pid": pids[slot],
                    "reason": r.reason,
                    "imp_id": imp_ids[slot],
                    "advertiser_id": r.advertiser_id,
                }
                for slot, r in rejected
            ]
        )
    return verdicts


def _forward_row(column: dict[str, list[Any]], slot: int, terms: _Recording) -> dict[str, Any]:
    """The forward task of the impression in ``slot``, as
    app.forwarding.plan.ForwardPlan.task makes it (its macro values, the same
    destination); tests/unit/attribution/test_envelope_judgement.py holds them equal."""
    plan, offer = terms.plan, terms.offer
    assert plan is not None
    aimp_id = column["aimp_id"][slot]
    destination = terms.single_destination or choose(plan.weighted, aimp_id)
    template = plan.templates[destination]
    # Only the macros the URL has: the same values, without a dict of all 17 each time.
    values: dict[str, object] = {}
    for name in terms.macros[destination]:
        if name in _MACRO_COLUMNS:
            values[name] = column[_MACRO_COLUMNS[name]][slot]
        elif name == "offer_id":
            values[name] = offer.id
        elif name == "advertiser_id":
            values[name] = offer.advertiser_id
        elif name == "time":
            # The impression's own time, so a replayed task is the same delivery.
            values[name] = id_ms(aimp_id) // 1000
        elif name == "rand":
            values[name] = random.getrandbits(31)
    return {
        "aimp_id": aimp_id,
        "offer_id": offer.id,
        "pid": column["pid"][slot],
        "advertiser_id": offer.advertiser_id,
        "destination": destination,
        "url": template.fill(values),
        "kind": IMPRESSION,
    }


def unreadable_impressions(envelope: Envelope) -> str | None:
    """Why ``envelope``'s impressions cannot be judged, if they cannot: only the edge
    writes them, so a row without a well-formed aimp_id, offer and affiliate is not
    ours to guess at (the whole envelope is set aside, app.events.dead_letters)."""
    for name in ("offer_id", "pid"):
        if not all(type(value) is int for value in envelope[name]):
            return f"an impression's {name} is not a whole number"
    if not all(isinstance(value, str) and is_valid_id(value) for value in envelope["aimp_id"]):
        return "an impression's aimp_id is not an ID"
    return None


def recorded_impression(entry: bytes | None, aimp_id: str, slot: int) -> Impression | None:
    """The impression ``aimp_id`` of an ``impressions`` table entry (its envelope's
    recorded impressions), or None if it was not recorded. Rejected impressions are
    not in the entry, so ``slot`` (the aimp_id's own) is where to look first, not
    where it must be; a forged ID that passes the seal's check is not found, since
    the whole ID is compared."""
    if entry is None:
        return None
    envelope = RECORDED_ENVELOPE.decode(entry)
    ids = envelope["aimp_id"]
    if slot < len(ids) and ids[slot] == aimp_id:
        index = slot
    elif aimp_id in ids:
        index = ids.index(aimp_id)
    else:
        return None
    return Impression(**envelope.row(index))
