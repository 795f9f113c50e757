"""The Faust consumer's workarounds that are pure decisions, tested alone."""

from __future__ import annotations

import pytest
from faust.transport.drivers import aiokafka as faust_aiokafka

from app.faust_transport import CurrentGenerationConsumer, IdempotentProducer


@pytest.mark.parametrize(("snapshot", "told"), [(0, None), (None, None), (4, 4)])
def test_a_topic_not_in_the_metadata_yet_has_no_partition_count(
    monkeypatch: pytest.MonkeyPatch, snapshot: int | None, told: int | None
) -> None:
    """aiokafka counts a just-created changelog topic as 0 partitions until the metadata
    has it; Faust is told "not known" instead, and does not crash the agent with
    PartitionsMismatch."""
    monkeypatch.setattr(faust_aiokafka.Consumer, "topic_partitions", lambda self, t: snapshot)
    consumer = object.__new__(CurrentGenerationConsumer)
    assert consumer.topic_partitions("imptrack-impressions-changelog") == told


def test_every_faust_producer_is_idempotent_with_acks_all(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not only under exactly_once: a retried send is never written twice."""
    monkeypatch.setattr(faust_aiokafka.Producer, "_settings_extra", lambda self: {})
    producer = object.__new__(IdempotentProducer)
    assert producer._settings_extra() == {"acks": "all", "enable_idempotence": True}
