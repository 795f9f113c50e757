"""The Apache Kafka that imptrack starts itself when ``KAFKA_BROKER`` is unset: jars
fetched by Maven from a pinned pom, run on the machine's Java 17+, in KRaft mode,
with data under ``$IMPTRACK_HOME/data/kafka``."""

from app.ops.local_kafka.jars import KafkaJars, kafka_jars
from app.ops.local_kafka.nodes import KafkaNode, LocalCluster

__all__ = ["KafkaJars", "KafkaNode", "LocalCluster", "kafka_jars"]
