"""The impressions agent alone: judged by the catalog, recorded, emitted, indexed."""

from __future__ import annotations

from typing import Any

from agents.impressions import record_impressions
from agents.table_progress import TableInput
from app.catalog.model import Advertiser, Affiliate, Catalog, Offer, Payment
from app.events import kinds
from app.events.records import Impression
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


async def test_an_eligible_impression_is_recorded_forwarded_and_indexed(worker: Worker) -> None:
    indexed: list[tuple[Impression, int]] = []

    async def index(recorded: list[tuple[Impression, int]]) -> None:
        indexed.extend(recorded)

    ids = IdGenerator(TEST_SEAL)
    eligible = Impression(aimp_id=ids.new_id(), offer_id=5, pid=3, sub1="s1")
    unknown = Impression(aimp_id=ids.new_id(), offer_id=77, pid=3)
    agent = record_impressions(
        worker.app,
        worker.topics,
        worker.tables.impressions,
        TableInput(worker.app, kinds.IMPRESSIONS),
        FixedCatalog(CATALOG),
        index,
    )
    async with agent.test_context() as tested:
        await tested.put(eligible, key=eligible.aimp_id)
        await tested.put(unknown, key=unknown.aimp_id)
        await settled(lambda: len(worker.topics.sent[kinds.REJECTED_IMPRESSIONS.topic]) == 1)
        stored: Any = worker.tables.impressions.data
        recorded = worker.topics.values(kinds.RECORDED_IMPRESSIONS)
        rejected = worker.topics.values(kinds.REJECTED_IMPRESSIONS)
        forwarded = worker.topics.values(kinds.FORWARD_TASKS)

    assert [r.aimp_id for r in recorded] == [eligible.aimp_id]
    # What it earned at the offer's CPM price (per thousand), with its advertiser.
    assert (recorded[0].revenue, recorded[0].payout, recorded[0].advertiser_id) == (
        "0.002",
        "0.0015",
        9,
    )
    assert [(r.aimp_id, r.reason, r.advertiser_id) for r in rejected] == [
        (unknown.aimp_id, "offer_unknown", None)
    ]
    assert [(f.aimp_id, f.url) for f in forwarded] == [
        (eligible.aimp_id, f"https://adv.example/imp?id={eligible.aimp_id}")
    ]
    assert [(i.aimp_id, window) for i, window in indexed] == [
        (eligible.aimp_id, OFFER.view_through_window)
    ]
    assert eligible.aimp_id in dict(stored.items())
    assert unknown.aimp_id not in dict(stored.items())
