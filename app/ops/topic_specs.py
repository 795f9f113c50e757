"""Every topic imptrack uses, as it is created: partitions, replicas and settings.

``imptrack up`` creates them before any process starts, and so does each worker or
forwarder started alone (``imptrack worker`` on a cluster nobody ran ``up`` on, or
one more worker added by hand). Faust would create a table's changelog itself, but
only as its worker starts, and a consumer that joins its group before its metadata
has the new topic leaves its partitions to nobody for the metadata's refresh
interval, or (Faust 0.15.3 reading aiokafka's count of 0 partitions as a real count)
crashes the agent with ``PartitionsMismatch`` (docs/ARCHITECTURE.md, "The broker").
"""

from __future__ import annotations

from aiokafka.errors import KafkaError

from app.events import kinds
from app.exceptions import StackError
from app.ops import probes
from app.settings import Settings


def topic_specs(s: Settings) -> list[probes.TopicSpec]:
    replicas = s.replication_factor
    # Acknowledged (acks=all) means written to this many replicas.
    durable = {"min.insync.replicas": str(s.min_insync_replicas)}
    compacted = {"cleanup.policy": "compact", **durable}
    specs = [
        probes.TopicSpec(name, s.topic_partitions, replicas, durable) for name in kinds.EVENT_TOPICS
    ]
    # One partition keeps catalog changes in the order they were made; compaction
    # keeps the latest state of every key for as long as the topic lives.
    specs.append(probes.TopicSpec(kinds.CATALOG_TOPIC, 1, replicas, compacted))
    # The tables' changelogs as Faust would make them (compacted, a partition per
    # event partition), but before the worker joins its group.
    specs += [
        probes.TopicSpec(name, s.topic_partitions, replicas, compacted)
        for name in kinds.CHANGELOG_TOPICS
    ]
    return specs


def ensure_topics(s: Settings) -> None:
    """Create whichever of imptrack's topics the broker does not have yet."""
    try:
        probes.create_topics(s.broker, topic_specs(s))
    except KafkaError as exc:
        raise StackError(
            f"could not create imptrack's topics on the Kafka at {s.broker}: {exc} "
            "(is KAFKA_BROKER right, and is the broker up? `imptrack up` starts a local one)"
        ) from exc
