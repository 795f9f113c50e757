"""From a recorded impression to its forward task."""

from __future__ import annotations

from dataclasses import replace

from app.catalog.model import Offer
from app.events.records import Impression
from app.forwarding import plan
from app.forwarding.plan import forward_plan, forward_task
from app.ids import IdGenerator, id_ms
from tests.ids import TEST_SEAL

OFFER = Offer(
    7,
    "O",
    3,
    impressions_url="https://adv.example/i?a={aimp_id}&t={time}&s={sub1}&o={offer_id}&v={advertiser_id}",
)


def _impression(**fields: object) -> Impression:
    return Impression(aimp_id=IdGenerator(TEST_SEAL).new_id(), offer_id=7, pid=9, **fields)


def test_the_task_carries_the_filled_url_and_names_its_destination() -> None:
    impression = _impression(sub1="a&b")
    task = forward_task(OFFER, impression)
    assert task is not None
    assert (task.aimp_id, task.offer_id, task.pid, task.advertiser_id) == (
        impression.aimp_id,
        7,
        9,
        3,
    )
    assert task.destination == OFFER.impressions_url
    assert task.url == (
        f"https://adv.example/i?a={impression.aimp_id}&t={id_ms(impression.aimp_id) // 1000}"
        "&s=a%26b&o=7&v=3"
    )


def test_an_offer_without_an_impressions_url_forwards_nothing() -> None:
    assert forward_task(Offer(8, "No URL", 3), _impression()) is None


def test_templates_are_compiled_once_per_version_of_the_offer() -> None:
    forward_plan.cache_clear()
    for _ in range(1000):
        forward_task(OFFER, _impression())
    assert forward_plan.cache_info().misses == 1
    changed = replace(OFFER, impressions_url="https://adv.example/other?a={aimp_id}")
    task = forward_task(changed, _impression())
    assert task is not None and task.url.startswith("https://adv.example/other?a=")
    assert forward_plan.cache_info().misses == 2
    assert plan.PLAN_CACHE_SIZE >= 1000
