"""The forwarder's scheduling agents alone: each batch of deliveries is scheduled
whole, a task with a malformed ID left out."""

from __future__ import annotations

from typing import Any

from agents.forwarder import schedule_deliveries
from app.events.records import ForwardTask
from app.ids import IdGenerator
from tests.ids import TEST_SEAL
from tests.unit.agents.conftest import Worker, settled


async def test_forward_tasks_are_scheduled_and_a_malformed_one_is_skipped(worker: Worker) -> None:
    scheduled: list[tuple[list[Any], str]] = []

    async def schedule(tasks: list[Any], what: str) -> None:
        scheduled.append((tasks, what))

    forward_tasks, _ = schedule_deliveries(worker.app, worker.topics, schedule)
    good = ForwardTask(
        aimp_id=IdGenerator(TEST_SEAL).new_id(),
        offer_id=5,
        pid=3,
        advertiser_id=9,
        destination="https://adv.example/imp",
        url="https://adv.example/imp",
    )
    malformed = good.derive(aimp_id="not-an-id")
    async with forward_tasks.test_context() as tested:
        await tested.put(good, key=good.aimp_id)
        await tested.put(malformed, key="not-an-id")
        await settled(lambda: sum(len(tasks) for tasks, _ in scheduled) >= 1)

    assert [(task.aimp_id, what) for tasks, what in scheduled for task in tasks] == [
        (good.aimp_id, "forward tasks")
    ]
