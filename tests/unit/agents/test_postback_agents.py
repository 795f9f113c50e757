"""The clicks, postbacks and conversions agents alone: a click kept, a postback
matched to it or refused, and the conversion it makes decided and answered."""

from __future__ import annotations

from typing import Any

import pytest

from agents.clicks import record_clicks
from agents.conversions import decide_conversions
from agents.postbacks import Sources, match_postbacks
from agents.table_progress import TableInput
from app.attribution.matches import action_partition, read_matches
from app.attribution.replies import Reply
from app.catalog.model import Advertiser, Affiliate, Catalog, Offer, Payment
from app.events import dead_letters, kinds
from app.events.envelopes import ENVELOPE_BYTES
from app.events.records import Click, MatchedPostback, Postback, PostbackOutcome
from app.ids import IdGenerator
from tests.ids import TEST_SEAL
from tests.unit.agents.conftest import FixedCatalog, Worker, settled

PARTITIONS = 4

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
        worker.app, worker.topics, sources, FixedCatalog(CATALOG), TEST_SEAL, reply, PARTITIONS
    )


def _matches(worker: Worker) -> list[tuple[str, MatchedPostback]]:
    """Every match the postbacks agent sent, by its action key, in order."""
    return [
        match
        for key, value in worker.topics.sent[kinds.POSTBACK_MATCHES.topic]
        for match in read_matches(value, key)
    ]


def _deciding(worker: Worker, reply: Reply) -> Any:
    """The conversions agent on ``worker``."""
    return decide_conversions(
        worker.app, worker.topics, worker.tables.conversions, FixedCatalog(CATALOG), reply
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

    ((key, matched),) = _matches(worker)
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
    assert (outcome.status, outcome.outcome, outcome.error_kind) == (2, "refused", "bad_parameter")
    assert "clickid" in (outcome.error or "")
    assert worker.topics.rows(kinds.POSTBACK_OUTCOMES) == [outcome.asdict()]


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
        await settled(lambda: len(_matches(worker)) == 2)

    async with _deciding(worker, reply).test_context() as tested:
        for key, value in worker.topics.sent[kinds.POSTBACK_MATCHES.topic]:
            await tested.put(value, key=key)
        await settled(lambda: len(replies) == 2)

    assert [o.outcome for _, o in replies] == ["created", "refused"]
    assert "duplicate" in (replies[1][1].error or "")
    (conversion,) = worker.topics.rows(kinds.CONVERSIONS)
    assert (conversion["conversion_id"], conversion["action_id"], conversion["revision"]) == (
        first.postback_id,
        "o-2",
        1,
    )
    # Both verdicts are in the log, in envelopes of outcomes.
    assert [o["outcome"] for o in worker.topics.rows(kinds.POSTBACK_OUTCOMES)] == [
        "created",
        "refused",
    ]
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
    ((_, matched),) = _matches(worker)
    assert (matched.conversion.aimp_id, matched.conversion.pid) == (second, 4)
    assert replies == []


async def test_a_batchs_matches_go_as_one_envelope_per_partition_of_their_actions(
    worker: Worker,
) -> None:
    """Not one record per postback: each envelope holds the matches whose actions are
    on the partition it is sent to, in the order the postbacks came."""
    ids, click, replies = _clicked(worker)
    postbacks = [_postback(ids, clickid=click.clickid, action_id=f"b-{n}") for n in range(12)]
    async with _matching(worker, _kept_in(replies)).test_context() as tested:
        for postback in postbacks:
            await tested.put(postback, key=click.clickid)
        await settled(lambda: len(_matches(worker)) == len(postbacks))

    sent = worker.topics.sent[kinds.POSTBACK_MATCHES.topic]
    partitions = worker.topics.partitions[kinds.POSTBACK_MATCHES.topic]
    # 12 actions over 4 partitions: fewer records than postbacks, however the
    # postbacks fell into batches.
    assert len(sent) < len(postbacks)
    for (key, value), partition in zip(sent, partitions, strict=True):
        matches = read_matches(value, key)
        assert key == matches[0][1].postback.postback_id
        assert {action_partition(action, PARTITIONS) for action, _ in matches} == {partition}
    assert sorted(matched.postback.postback_id for _, matched in _matches(worker)) == sorted(
        p.postback_id for p in postbacks
    )
    assert replies == []


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x7f[[],[],[]]", "postback matches envelope of format 127, which this imptrack"),
        (b"\x01[[1],[{}],[{}]]", "a match without an action key or postback: 1"),
        (b'\x01[["5:x"],[{"nope":1}],[{}]]', "the match of action '5:x': "),
    ],
    ids=["unknown-format", "no-action-key", "not-a-postback"],
)
async def test_an_unreadable_matches_record_is_set_aside_and_the_next_is_decided(
    worker: Worker, value: bytes, reason: str
) -> None:
    ids, click, replies = _clicked(worker)
    async with _matching(worker, _kept_in(replies)).test_context() as tested:
        await tested.put(_postback(ids, clickid=click.clickid, action_id="u-1"), key=click.clickid)
        await settled(lambda: len(_matches(worker)) == 1)
    ((key, good),) = worker.topics.sent[kinds.POSTBACK_MATCHES.topic]

    async with _deciding(worker, _kept_in(replies)).test_context() as tested:
        await tested.put(value, key="0123456789abcdef01234567")
        await tested.put(good, key=key)
        await settled(lambda: len(replies) == 1)

    assert [o.outcome for _, o in replies] == ["created"]
    assert worker.topics.sent[kinds.UNREADABLE.topic] == [("0123456789abcdef01234567", value)]
    (headers,) = worker.topics.headers[kinds.UNREADABLE.topic]
    named = {name: text.decode() for name, text in headers}
    assert named[dead_letters.REASON].startswith(reason), named[dead_letters.REASON]


async def test_a_match_sent_as_a_record_of_its_own_before_envelopes_is_decided(
    worker: Worker,
) -> None:
    """A worker upgraded with matches in flight reads them as they were written: one
    JSON MatchedPostback a record, keyed by its action."""
    ids, click, replies = _clicked(worker)
    async with _matching(worker, _kept_in(replies)).test_context() as tested:
        await tested.put(
            _postback(ids, clickid=click.clickid, action_id="old-1"), key=click.clickid
        )
        await settled(lambda: len(_matches(worker)) == 1)
    ((action, matched),) = _matches(worker)

    async with _deciding(worker, _kept_in(replies)).test_context() as tested:
        await tested.put(matched.dumps(serializer="json"), key=action.encode())
        await settled(lambda: len(replies) == 1)

    assert [o.outcome for _, o in replies] == ["created"]
    assert worker.tables.conversions.get("5:old-1").conversion.action_id == "old-1"


async def test_refusals_too_large_for_one_record_go_as_several_envelopes(
    worker: Worker,
) -> None:
    """Postbacks may carry up to the edge's 64 KiB of parameters each: a batch's
    outcomes are split so that no record passes ENVELOPE_BYTES, and none is lost."""
    ids, _, replies = _clicked(worker)
    padding = "p" * 60_000
    postbacks = [_postback(ids, clickid="nope", note=padding) for _ in range(20)]
    async with _matching(worker, _kept_in(replies)).test_context() as tested:
        for postback in postbacks:
            await tested.put(postback, key=postback.postback_id)
        await settled(lambda: len(replies) == len(postbacks))

    values = worker.topics.values(kinds.POSTBACK_OUTCOMES)
    assert len(values) > 1
    assert all(len(value) <= ENVELOPE_BYTES for value in values)
    assert sorted(row["postback_id"] for row in worker.topics.rows(kinds.POSTBACK_OUTCOMES)) == (
        sorted(p.postback_id for p in postbacks)
    )
