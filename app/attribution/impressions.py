"""What becomes of an impression the edge accepted: recorded with what it earns and
forwarded, or rejected with its reason. Pure: the impressions agent
(agents/impressions.py) calls it for each impression of a batch."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.attribution.payments import impression_earning
from app.catalog.eligibility import rejection_reason
from app.catalog.model import Catalog
from app.events.envelopes import Envelope
from app.events.kinds import RECORDED_ENVELOPE
from app.events.records import ForwardTask, Impression, RejectedImpression
from app.forwarding.plan import forward_task
from app.ids import is_valid_id


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
    """What became of an envelope's impressions, as rows of the envelopes the
    impressions agent writes (app.events.kinds): recorded, rejected and forward
    tasks, in slot order; and the recorded ones to index for clicks, each with its
    view-through window in seconds."""

    recorded: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[dict[str, Any]] = field(default_factory=list)
    forward: list[dict[str, Any]] = field(default_factory=list)
    indexed: list[tuple[Impression, int]] = field(default_factory=list)


def judge_envelope(in_force: Catalog, envelope: Envelope) -> EnvelopeVerdicts:
    """Judge every impression of ``envelope`` by ``in_force``, the catalog in force
    when its envelope was opened (its impressions' aimp_ids share that millisecond)."""
    verdicts = EnvelopeVerdicts()
    for row in envelope.rows():
        judged = judge_impression(in_force, Impression(**row))
        if isinstance(judged, Recorded):
            verdicts.recorded.append(judged.earning.asdict())
            verdicts.indexed.append((judged.impression, judged.view_through_window))
            if judged.forward is not None:
                verdicts.forward.append(judged.forward.asdict())
        else:
            verdicts.rejected.append(judged.asdict())
    return verdicts


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
