"""The nodes of the local Apache Kafka cluster: their configuration, storage and command.

Every node is broker and KRaft controller at once, on loopback. Node ``i`` (from 1)
listens for clients on ``first_port + 2(i-1)`` and for its controller quorum on the
port after it. One node by default; three (``IMPTRACK_KAFKA_NODES=3``) give event
topics three replicas with two in sync, as a production cluster would.

Sizes are for a 2-core machine with a few GB: two network and two I/O threads, one
replica fetcher, one log cleaner with a small buffer, and a fixed heap
(``IMPTRACK_KAFKA_HEAP_MB``) so the JVM's memory levels off instead of creeping.
"""

from __future__ import annotations

import base64
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from app.exceptions import StackError
from app.ops.local_kafka.jars import KafkaJars

LOG4J_CONFIG = Path(__file__).with_name("log4j2.properties")
FORMAT_TIMEOUT_SECONDS = 60.0
MAX_REPLICAS = 3
"""Replicas of a topic on a cluster of three nodes or more, as production runs."""


def min_insync_replicas(replicas: int) -> int:
    """With three replicas one may be down while writes go on, and an acknowledged
    record is still on two machines."""
    return 2 if replicas >= 3 else 1


@dataclass(frozen=True)
class KafkaNode:
    """One node of the local cluster."""

    node_id: int  # from 1
    client_port: int
    controller_port: int
    data_dir: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def properties_file(self) -> Path:
        return self.data_dir.parent / f"node-{self.node_id}.properties"

    @property
    def formatted(self) -> bool:
        return (self.data_dir / "meta.properties").is_file()


def new_cluster_id() -> str:
    """Kafka's own form of a UUID: URL-safe base64 without padding. Never one that
    starts with "-", as Kafka's ``Uuid.randomUuid`` does: the storage tool's argument
    parser takes ``--cluster-id -x...`` for a missing value and an option (one start
    in 64 failed "argument --cluster-id/-t: expected one argument")."""
    while True:
        made = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not made.startswith("-"):
            return made


@dataclass(frozen=True)
class LocalCluster:
    """The local cluster's nodes and the settings they share."""

    nodes: tuple[KafkaNode, ...]
    home: Path  # $IMPTRACK_HOME/data/kafka
    heap_mb: int

    @classmethod
    def plan(cls, home: Path, first_port: int, count: int, heap_mb: int) -> LocalCluster:
        nodes = tuple(
            KafkaNode(i, first_port + 2 * (i - 1), first_port + 2 * (i - 1) + 1, home / f"node-{i}")
            for i in range(1, count + 1)
        )
        return cls(nodes, home, heap_mb)

    @property
    def bootstrap(self) -> str:
        return ",".join(node.bootstrap for node in self.nodes)

    @property
    def replicas(self) -> int:
        return min(len(self.nodes), MAX_REPLICAS)

    @property
    def min_insync_replicas(self) -> int:
        return min_insync_replicas(self.replicas)

    @property
    def cluster_id_file(self) -> Path:
        return self.home / "cluster-id"

    def cluster_id(self) -> str:
        """The cluster's id, made once: every node is formatted with it, and a
        restart keeps it (with the data)."""
        try:
            return self.cluster_id_file.read_text().strip()
        except FileNotFoundError:
            pass
        self.home.mkdir(parents=True, exist_ok=True)
        made = new_cluster_id()
        self.cluster_id_file.write_text(made)
        return made

    def properties(self, node: KafkaNode) -> str:
        voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        settings = {
            "node.id": node.node_id,
            "process.roles": "broker,controller",
            "controller.quorum.voters": voters,
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{node.client_port},"
                f"CONTROLLER://127.0.0.1:{node.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.client_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.data_dir,
            "num.network.threads": 2,
            "num.io.threads": 2,
            "background.threads": 4,
            "num.replica.fetchers": 1,
            "num.recovery.threads.per.data.dir": 1,
            "log.cleaner.threads": 1,
            # The cleaner's buffer is taken from the heap whole (128 MB by default).
            "log.cleaner.dedupe.buffer.size": 16 * 1024 * 1024,
            "log.segment.bytes": 128 * 1024 * 1024,
            "default.replication.factor": self.replicas,
            "min.insync.replicas": self.min_insync_replicas,
            "offsets.topic.replication.factor": self.replicas,
            "offsets.topic.num.partitions": 10,
            "transaction.state.log.replication.factor": self.replicas,
            "transaction.state.log.min.isr": self.min_insync_replicas,
            "transaction.state.log.num.partitions": 10,
            # A group forms as soon as its first member joins, not 3 s later.
            "group.initial.rebalance.delay.ms": 0,
            # A killed node is fenced, and leaves the in-sync replicas, within 6 s.
            "broker.session.timeout.ms": 6000,
            "broker.heartbeat.interval.ms": 1000,
            "replica.lag.time.max.ms": 10000,
            "unclean.leader.election.enable": "false",
        }
        return "".join(f"{key}={value}\n" for key, value in settings.items())

    def java_options(self, node: KafkaNode) -> list[str]:
        return [
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            # The whole heap is touched at start, so the node's memory is what it will
            # be from the first minute on (no creep while G1 first fills its regions).
            "-XX:+AlwaysPreTouch",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:MaxMetaspaceSize=192m",
            "-XX:MaxDirectMemorySize=256m",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            f"-Dkafka.logs.dir={node.data_dir.parent / 'logs'}",
        ]

    def prepare(self, node: KafkaNode, jars: KafkaJars) -> list[str]:
        """Write the node's configuration, format its storage on the first start, and
        give the command that runs it."""
        node.data_dir.mkdir(parents=True, exist_ok=True)
        node.properties_file.write_text(self.properties(node))
        if not node.formatted:
            self._format(node, jars)
        return [
            jars.java,
            *self.java_options(node),
            "-cp",
            jars.classpath,
            "kafka.Kafka",
            str(node.properties_file),
        ]

    def _format(self, node: KafkaNode, jars: KafkaJars) -> None:
        argv = [
            jars.java,
            "-Xmx256m",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            jars.classpath,
            "kafka.tools.StorageTool",
            "format",
            "--cluster-id",
            self.cluster_id(),
            "--config",
            str(node.properties_file),
            "--ignore-formatted",
        ]
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=FORMAT_TIMEOUT_SECONDS,
            check=False,
        )
        if done.returncode != 0:
            said = (done.stdout + done.stderr).strip().splitlines()
            raise StackError(
                f"could not format Kafka node {node.node_id}'s storage in {node.data_dir}: "
                f"{said[-1] if said else 'no output'}"
            )
