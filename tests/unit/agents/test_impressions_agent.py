"""The impressions agent alone: an envelope judged by the catalog, recorded,
emitted as envelopes; an unreadable record set aside, never dropped."""

from __future__ import annotations

from typing import Any

import pytest

from agents.impressions import record_impressions
from agents.table_progress import TableInput
from app.attribution.impressions import recorded_impression
from app.catalog.model import Advertiser, Affiliate, Catalog, Offer, Payment
from app.events import dead_letters, kinds
from app.events.envelopes import Envelope
from app.events.provenance import source_of
from app.events.records import impression_payload
from app.ids import IdGenerator
from tests.ids import TEST_SEAL
from tests.unit.agents.conftest import FixedCatalog, Worker, settled

OFFER = Offer(
    id=5,
    title="Banner",
    advertiser_id=9,
    allow_impressions=True,
    impressions_url="https://adv.example/imp?id={aimp_id}",
    payments=(Payment("CPM", "2.00", "1.50"),),
)
CATALOG = Catalog(
    advertisers={9: Advertiser(9, "Adv")}, offers={5: OFFER}, affiliates={3: Affiliate(3, "Aff")}
)


def _envelope(*offers: int) -> tuple[str, list[str], bytes]:
    """An envelope as the edge writes it, one impression per offer (affiliate 3):
    its key, its aimp_ids and its bytes."""
    ids = IdGenerator(TEST_SEAL).open_envelope(2)
    rows = []
    for slot, offer in enumerate(offers):
        row = impression_payload(offer, 3, f"i-{slot}", {"sub1": "s1"}, "UA", "10.0.0.1")
        rows.append({**row, "aimp_id": ids.id(slot)})
    value = kinds.IMPRESSIONS.enveloped.current.encode_rows(rows)
    return ids.key, [row["aimp_id"] for row in rows], value


def _agent(worker: Worker) -> Any:
    return record_impressions(
        worker.app,
        worker.topics,
        worker.tables.impressions,
        TableInput(worker.app, kinds.IMPRESSIONS),
        FixedCatalog(CATALOG),
    )


def _decoded(worker: Worker, kind: kinds.EventKind) -> list[Envelope]:
    return [kind.enveloped.decode(value) for value in worker.topics.values(kind)]


async def test_an_envelope_is_judged_recorded_and_forwarded_as_one(
    worker: Worker,
) -> None:
    """Each output is one envelope per input envelope, under its key: the recorded
    impressions (with what they earned), the rejected ones (with their reason), the
    forward tasks; the table holds one entry for the envelope, where a lookup by
    aimp_id finds the recorded impression and only it."""
    key, (eligible, unknown, second), value = _envelope(5, 77, 5)
    async with _agent(worker).test_context() as tested:
        await tested.put(value, key=key)
        await settled(lambda: len(worker.topics.sent[kinds.FORWARD_TASKS.topic]) == 1)
        stored: Any = dict(worker.tables.impressions.data.items())

    (recorded,) = _decoded(worker, kinds.RECORDED_IMPRESSIONS)
    (rejected,) = _decoded(worker, kinds.REJECTED_IMPRESSIONS)
    (forwarded,) = _decoded(worker, kinds.FORWARD_TASKS)
    for kind in (kinds.RECORDED_IMPRESSIONS, kinds.REJECTED_IMPRESSIONS, kinds.FORWARD_TASKS):
        assert [k for k, _ in worker.topics.sent[kind.topic]] == [key]
    # The forward tasks name the record they were made from: the forwarder recognises
    # a replay of them by it.
    (forward_headers,) = worker.topics.headers[kinds.FORWARD_TASKS.topic]
    source = source_of(forward_headers)
    assert source is not None
    # (test_context() reads from a channel of its own, at offset 0.)
    assert (source.partition, source.offset) == (0, 0)
    assert recorded["aimp_id"] == [eligible, second]
    # What each earned at the offer's CPM price (per thousand), with its advertiser.
    assert (recorded["revenue"], recorded["payout"], recorded["advertiser_id"]) == (
        ["0.002"] * 2,
        ["0.0015"] * 2,
        [9, 9],
    )
    assert (recorded["sub1"], recorded["imp_id"]) == (["s1", "s1"], ["i-0", "i-2"])
    assert list(rejected.rows()) == [
        {
            "aimp_id": unknown,
            "offer_id": 77,
            "pid": 3,
            "reason": "offer_unknown",
            "imp_id": "i-1",
            "advertiser_id": None,
        }
    ]
    assert forwarded["url"] == [f"https://adv.example/imp?id={a}" for a in (eligible, second)]
    assert list(stored) == [key]
    parts = {a: TEST_SEAL.parts(a) for a in (eligible, unknown, second)}
    found = recorded_impression(stored[key], second, parts[second].slot)  # type: ignore[union-attr]
    assert found is not None and (found.aimp_id, found.revenue) == (second, "0.002")
    assert recorded_impression(stored[key], unknown, parts[unknown].slot) is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"\x7f[[]]", "impressions envelope of format 127, which this imptrack does not know"),
        (b"\x01[[1,2", "impressions envelope v1: "),
        (b"", "an empty record is no impressions envelope"),
    ],
    ids=["unknown-format", "broken-json", "empty"],
)
async def test_an_unreadable_record_is_set_aside_and_the_next_envelope_goes_on(
    worker: Worker, value: bytes, reason: str
) -> None:
    """A record of a format this worker does not know (or no envelope at all) goes,
    as it came, to unreadable-records with where it was and why; the envelope after
    it is recorded as usual."""
    key, (eligible,), good = _envelope(5)
    async with _agent(worker).test_context() as tested:
        await tested.put(value, key="00000000000000000000")
        await tested.put(good, key=key)
        await settled(lambda: len(worker.topics.sent[kinds.RECORDED_IMPRESSIONS.topic]) == 1)

    assert worker.topics.sent[kinds.UNREADABLE.topic] == [("00000000000000000000", value)]
    (headers,) = worker.topics.headers[kinds.UNREADABLE.topic]
    named = {name: text.decode() for name, text in headers}
    # The test context's channel is "<internal>", partition 0; on Kafka it is the
    # impressions topic (tests/integration/test_unreadable_records.py).
    assert (named[dead_letters.SOURCE_PARTITION], named[dead_letters.SOURCE_OFFSET]) == ("0", "0")
    assert named[dead_letters.REASON].startswith(reason), named[dead_letters.REASON]
    (recorded,) = _decoded(worker, kinds.RECORDED_IMPRESSIONS)
    assert recorded["aimp_id"] == [eligible]


async def test_an_envelope_with_a_malformed_impression_is_set_aside_whole(
    worker: Worker,
) -> None:
    """Only the edge writes envelopes: one whose impression has no whole-number offer
    is not judged in part, it is set aside whole, and says why."""
    rows = [{"aimp_id": IdGenerator(TEST_SEAL).new_id(), "offer_id": "5", "pid": 3}]
    value = kinds.IMPRESSIONS.enveloped.current.encode_rows(rows)
    key = IdGenerator(TEST_SEAL).open_envelope(0).key
    async with _agent(worker).test_context() as tested:
        await tested.put(value, key=key)
        await settled(lambda: len(worker.topics.sent[kinds.UNREADABLE.topic]) == 1)
    (headers,) = worker.topics.headers[kinds.UNREADABLE.topic]
    assert (dead_letters.REASON, b"an impression's offer_id is not a whole number") in headers
    assert worker.topics.sent[kinds.RECORDED_IMPRESSIONS.topic] == []
