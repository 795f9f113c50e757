"""The local Apache Kafka: its jars, its nodes' configuration, and what a machine
without Java or Maven is told."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from app.exceptions import StackError
from app.ops.local_kafka import LocalCluster
from app.ops.local_kafka.jars import (
    cache_file,
    fetch_classpath,
    find_java,
    maven_error,
    parse_java_version,
)
from app.ops.local_kafka.nodes import new_cluster_id


def _script(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.mark.parametrize(
    ("shown", "major"),
    [
        ('openjdk version "17.0.15" 2025-04-15', 17),
        ('java version "1.8.0_402"', 8),
        ('openjdk version "21" 2023-09-19', 21),
        ('openjdk version "25.0.1" 2025-10-21 LTS', 25),
    ],
)
def test_the_java_version_is_read_as_java_prints_it(shown: str, major: int) -> None:
    """Old (1.8) and new (17.0.15) version strings give the major version."""
    assert parse_java_version(shown) == major


def test_a_java_too_old_is_refused_with_what_to_install(tmp_path: Path) -> None:
    """A Java 8 on JAVA_HOME is named and the needed version given."""
    _script(tmp_path / "bin", "java", "echo 'java version \"1.8.0_402\"' >&2")
    with pytest.raises(StackError, match=r"is Java 8; the local Apache Kafka needs Java 17"):
        find_java({"JAVA_HOME": str(tmp_path)})


def test_no_java_says_what_to_install(tmp_path: Path) -> None:
    """Without java the message says to install a JDK or to name a cluster."""
    with pytest.raises(StackError, match=r"Java not found.*Install a JDK.*KAFKA_BROKER"):
        find_java({"JAVA_HOME": str(tmp_path / "nowhere")})


def test_no_maven_says_what_to_install(tmp_path: Path) -> None:
    """Without mvn (and nothing cached) the message says to install Maven."""
    with pytest.raises(StackError, match=r"Maven \(mvn\) not found.*apt-get install maven"):
        fetch_classpath({"PATH": str(tmp_path)}, None, tmp_path / "cache")


def test_a_failed_fetch_gives_mavens_reason_not_a_stack_trace(tmp_path: Path) -> None:
    """Maven's first [ERROR] line is in the one message, without colour codes."""
    _script(
        tmp_path / "bin",
        "mvn",
        "printf '\\033[1;31m[ERROR]\\033[m Failed to collect dependencies: "
        "Unknown host repo.example\\n[ERROR] \\n[ERROR] -> [Help 1]\\n'; exit 1",
    )
    with pytest.raises(StackError) as raised:
        fetch_classpath({"PATH": str(tmp_path / "bin")}, None, tmp_path / "cache")
    message = str(raised.value)
    assert "Maven could not fetch Apache Kafka's jars" in message
    assert "Failed to collect dependencies: Unknown host repo.example" in message
    assert "\x1b" not in message and "KAFKA_BROKER" in message


def test_the_cached_classpath_is_used_without_maven(tmp_path: Path) -> None:
    """A second start runs no Maven: the cached classpath's jars are all there."""
    jars = [tmp_path / "a.jar", tmp_path / "b.jar"]
    for jar in jars:
        jar.write_bytes(b"PK")
    cached = cache_file(tmp_path / "cache", None)
    cached.parent.mkdir(parents=True)
    cached.write_text(os.pathsep.join(map(str, jars)))
    no_maven = {"PATH": str(tmp_path / "empty")}
    assert fetch_classpath(no_maven, None, tmp_path / "cache") == os.pathsep.join(map(str, jars))
    jars[1].unlink()
    with pytest.raises(StackError, match="mvn"):
        fetch_classpath(no_maven, None, tmp_path / "cache")


def test_another_maven_repository_is_another_cache(tmp_path: Path) -> None:
    """Pointing Maven at an empty repository fetches again instead of reusing ~/.m2."""
    assert cache_file(tmp_path, None) != cache_file(tmp_path, tmp_path / "empty-m2")


def test_maven_error_without_an_error_line_gives_the_last_line() -> None:
    assert maven_error("something\nwent wrong\n") == "went wrong"
    assert maven_error("") == "no output"


def test_three_nodes_are_a_quorum_with_two_replicas_in_sync(tmp_path: Path) -> None:
    """IMPTRACK_KAFKA_NODES=3: three voters on loopback, replication 3, min ISR 2."""
    cluster = LocalCluster.plan(tmp_path, 30000, 3, 512)
    assert cluster.bootstrap == "127.0.0.1:30000,127.0.0.1:30002,127.0.0.1:30004"
    assert (cluster.replicas, cluster.min_insync_replicas) == (3, 2)
    second = cluster.properties(cluster.nodes[1])
    assert "node.id=2\n" in second
    assert "controller.quorum.voters=1@127.0.0.1:30001,2@127.0.0.1:30003,3@127.0.0.1:30005\n" in (
        second
    )
    assert "listeners=PLAINTEXT://127.0.0.1:30002,CONTROLLER://127.0.0.1:30003\n" in second
    assert "transaction.state.log.min.isr=2\n" in second
    assert f"log.dirs={tmp_path / 'node-2'}\n" in second


def test_one_node_keeps_one_replica(tmp_path: Path) -> None:
    cluster = LocalCluster.plan(tmp_path, 30000, 1, 512)
    assert (cluster.replicas, cluster.min_insync_replicas) == (1, 1)
    assert "offsets.topic.replication.factor=1\n" in cluster.properties(cluster.nodes[0])


def test_the_cluster_id_is_made_once_and_kept(tmp_path: Path) -> None:
    """A restart formats nothing anew: the id is Kafka's 22-character form, and stays."""
    cluster = LocalCluster.plan(tmp_path, 30000, 1, 512)
    made = cluster.cluster_id()
    assert len(made) == 22 and LocalCluster.plan(tmp_path, 30000, 1, 512).cluster_id() == made


def test_a_cluster_id_never_starts_with_a_dash(monkeypatch: pytest.MonkeyPatch) -> None:
    """The storage tool would take it for an option: "--cluster-id -x..." failed with
    "expected one argument" (one start in 64). A dash first is drawn again."""
    drawn = iter([uuid.UUID(bytes=b"\xfb" + bytes(15)), uuid.UUID(bytes=bytes(16))])
    monkeypatch.setattr(uuid, "uuid4", lambda: next(drawn))
    assert new_cluster_id() == "AAAAAAAAAAAAAAAAAAAAAA"


def test_up_without_java_prints_one_clear_line(tmp_path: Path) -> None:
    """`imptrack up` on a machine without Java: one line saying what to install, exit 2,
    and nothing started."""
    env = {
        "PATH": str(Path(sys.executable).parent),
        "IMPTRACK_HOME": str(tmp_path / "home"),
        "JAVA_HOME": str(tmp_path / "no-jdk"),
        "IMPTRACK_BROKER_PORT": "1",
        "HOME": str(tmp_path),
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "up"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "imptrack: Java not found: the local Apache Kafka needs Java 17 or newer. Install a "
        "JDK (Debian: apt-get install openjdk-17-jdk-headless) or set JAVA_HOME; or set "
        "KAFKA_BROKER=host:port to use a Kafka cluster you run."
    ]
    assert not (tmp_path / "home" / "run" / "redis.pid").exists()
