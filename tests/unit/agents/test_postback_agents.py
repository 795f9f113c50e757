"""The clicks, postbacks and conversions agents alone: a click kept, a postback
matched to it or refused, and the conversion it makes decided and answered."""

from __future__ import annotations

from typing import Any

from agents.clicks import record_clicks
from agents.conversions import decide_conversions
from agents.postbacks import Sources, match_postbacks
from agents.table_progress import TableInput
from app.attribution.replies import Reply
from app.catalog.model import Advertiser, Affiliate, Catalog, Offer, Payment
from app.events import kinds
from app.events.records import Click, Postback, PostbackOutcome
from app.ids import IdGenerator
from tests.ids import TEST_SEAL
from tests.unit.agents.conftest import FixedCatalog, Worker, settled

CATALOG = Catalog(
    advertisers={9: Advertiser(9, "Adv")},
    offers={5: Offer(id=5, title="O", advertiser_id=9, payments=(Payment("CPA", "10", "7"),))},
    affiliates={3: Affiliate(3, "Aff")},
)


def _clicked(worker: Worker) -> tuple[IdGenerator, Click, list[tuple[Postback, PostbackOutcome]]]:
    """IDs, a click the clicks agent has written (straight into the in-memory table)
    and where the postbacks' replies will be kept."""
    ids = IdGenerator(TEST_SEAL)
    click = Click(clickid=ids.new_id(), offer_id=5, pid=3, advertiser_id=9, link="none")
    worker.tables.clicks.data[click.clickid] = click
    return ids, click, []


def _kept_in(replies: list[tuple[Postback, PostbackOutcome]]) -> Reply:
    async def reply(decided: list[tuple[Postback, PostbackOutcome]]) -> None:
        replies.extend(decided)

    return reply


def _matching(worker: Worker, reply: Reply) -> Any:
    """The postbacks agent on ``worker``, looking clicks and impressions up in its tables."""
    sources = Sources(
        worker.tables.clicks,
        TableInput(worker.app, kinds.CLICKS),
        worker.tables.impressions,
        TableInput(worker.app, kinds.IMPRESSIONS),
        TEST_SEAL,
    )
    return match_postbacks(
        worker.app, worker.topics, sources, FixedCatalog(CATALOG), TEST_SEAL, reply
    )


def _postback(ids: IdGenerator, **params: str) -> Postback:
    """A postback as the edge received it, from an edge process waiting for its verdict."""
    return Postback(postback_id=ids.new_id(), method="GET", params=params, reply_to="edge-1")


async def test_a_click_is_kept_by_its_clickid(worker: Worker) -> None:
    click = Click(
        clickid=IdGenerator(TEST_SEAL).new_id(), offer_id=5, pid=3, advertiser_id=9, link="none"
    )
    agent = record_clicks(
        worker.app, worker.topics, worker.tables.clicks, TableInput(worker.app, kinds.CLICKS)
    )
    async with agent.test_context() as tested:
        await tested.put(click, key=click.clickid)
        await settled(lambda: worker.tables.clicks.get(click.clickid) is not None)
    assert worker.tables.clicks.get(click.clickid).offer_id == 5


async def test_a_postback_naming_a_click_is_matched_and_a_malformed_one_refused(
    worker: Worker,
) -> None:
    ids, click, replies = _clicked(worker)
    reply = _kept_in(replies)
    good = _postback(ids, clickid=click.clickid, action_id="o-1")
    bad = _postback(ids, clickid="nope")
    agent = _matching(worker, reply)
    async with agent.test_context() as tested:
        await tested.put(good, key=click.clickid)
        await tested.put(bad, key=bad.postback_id)
        await settled(
            lambda: len(replies) == 1 and len(worker.topics.sent[kinds.POSTBACK_MATCHES.topic]) == 1
        )

    ((key, matched),) = worker.topics.sent[kinds.POSTBACK_MATCHES.topic]
    assert key == "5:o-1"
    assert (matched.conversion.clickid, matched.conversion.pid, matched.conversion.payout) == (
        click.clickid,
        3,
        "7",
    )
    # Only the refusal is answered here; an accepted postback is answered by the
    # conversions agent, once decided.
    ((postback, outcome),) = replies
    assert postback.postback_id == bad.postback_id
    assert (outcome.status, outcome.outcome) == (2, "refused")
    assert "clickid" in (outcome.error or "")
    assert worker.topics.values(kinds.POSTBACK_OUTCOMES) == [outcome]


async def test_a_new_action_becomes_a_conversion_and_its_repeat_is_a_duplicate(
    worker: Worker,
) -> None:
    ids, click, replies = _clicked(worker)
    reply = _kept_in(replies)
    matcher = _matching(worker, reply)
    first = _postback(ids, clickid=click.clickid, action_id="o-2")
    again = _postback(ids, clickid=click.clickid, action_id="o-2")
    async with matcher.test_context() as tested:
        await tested.put(first, key=click.clickid)
        await tested.put(again, key=click.clickid)
        await settled(lambda: len(worker.topics.sent[kinds.POSTBACK_MATCHES.topic]) == 2)

    decider = decide_conversions(
        worker.app, worker.topics, worker.tables.conversions, FixedCatalog(CATALOG), reply
    )
    async with decider.test_context() as tested:
        for key, matched in worker.topics.sent[kinds.POSTBACK_MATCHES.topic]:
            await tested.put(matched, key=key)
        await settled(lambda: len(replies) == 2)

    assert [o.outcome for _, o in replies] == ["created", "refused"]
    assert "duplicate" in (replies[1][1].error or "")
    (conversion,) = worker.topics.values(kinds.CONVERSIONS)
    assert (conversion.conversion_id, conversion.action_id, conversion.revision) == (
        first.postback_id,
        "o-2",
        1,
    )
    assert worker.tables.conversions.get("5:o-2").conversion.conversion_id == first.postback_id


async def test_a_postback_naming_an_impression_finds_it_in_its_envelopes_entry(
    worker: Worker,
) -> None:
    """The impressions table holds one entry per envelope (its recorded
    impressions): a postback naming an aimp_id is matched to that impression by the
    envelope key and slot its ID carries. (That an impression of the envelope that
    was not recorded is not found: test_impressions_agent.py.)"""
    ids = IdGenerator(TEST_SEAL)
    envelope = ids.open_envelope(0)
    first, second = envelope.id(0), envelope.id(1)
    rows = [
        {"aimp_id": aimp_id, "offer_id": 5, "pid": pid, "revenue": "0", "payout": "0"}
        for aimp_id, pid in ((first, 3), (second, 4))
    ]
    entry = kinds.RECORDED_IMPRESSIONS.enveloped.current.encode_rows(rows)
    worker.tables.impressions.data[envelope.key] = entry
    replies: list[tuple[Postback, PostbackOutcome]] = []
    found = _postback(ids, aimp_id=second, action_id="vt-1")
    async with _matching(worker, _kept_in(replies)).test_context() as tested:
        await tested.put(found, key=second)
        await settled(lambda: len(worker.topics.sent[kinds.POSTBACK_MATCHES.topic]) == 1)
    ((_, matched),) = worker.topics.sent[kinds.POSTBACK_MATCHES.topic]
    assert (matched.conversion.aimp_id, matched.conversion.pid) == (second, 4)
    assert replies == []
