"""Settings from the environment, and which processes a stack runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from app.events import kinds
from app.exceptions import ConfigurationError
from app.ops import probes
from app.ops.probes import free_ports
from app.ops.stack import Stack, isolated_stack
from app.ops.topic_specs import topic_specs
from app.settings import Settings


def test_defaults_use_the_local_services(tmp_path: Path) -> None:
    """Without KAFKA_BROKER / REDIS_URL, `up` starts its own Kafka and Redis."""
    s = Settings.from_env({"IMPTRACK_HOME": str(tmp_path)})
    assert s.broker == "127.0.0.1:19092" and s.edge_url == "http://127.0.0.1:8080"
    names = [c.name for c in Stack(s, {}).components()]
    assert names == ["broker", "redis", "worker", "forwarder", "exporter", "edge"]


def test_external_broker_and_redis_are_used_instead(tmp_path: Path) -> None:
    """With KAFKA_BROKER and REDIS_URL set, nothing of ours is started in their place."""
    s = Settings.from_env(
        {
            "IMPTRACK_HOME": str(tmp_path),
            "KAFKA_BROKER": "kafka://kafka-1:9092",
            "REDIS_URL": "redis://cache:6379/2",
        }
    )
    assert s.broker == "kafka-1:9092" and s.redis == "redis://cache:6379/2"
    assert [c.name for c in Stack(s, {}).components()] == [
        "worker",
        "forwarder",
        "exporter",
        "edge",
    ]


def test_an_isolated_stack_ignores_the_environments_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tests and benchmarks run on a broker and Redis of their own, whatever the shell
    they are started from names."""
    monkeypatch.setenv("KAFKA_BROKER", "kafka://production:9092")
    monkeypatch.setenv("REDIS_URL", "redis://production:6379/0")
    stack = isolated_stack(tmp_path)
    assert stack.settings.kafka_broker is None and "KAFKA_BROKER" not in stack.env
    assert "REDIS_URL" not in stack.env
    assert [c.name for c in stack.components()][:2] == ["broker", "redis"]


def test_an_isolated_stack_takes_a_broker_it_is_given(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The soak can be pointed at a broker of its own (SOAK_KAFKA_BROKER): named by the
    caller, not inherited, it is used instead of the local one."""
    monkeypatch.setenv("KAFKA_BROKER", "kafka://production:9092")
    stack = isolated_stack(tmp_path, KAFKA_BROKER="kafka://soak-kafka:9092")
    assert stack.settings.broker == "soak-kafka:9092"
    assert stack.env["KAFKA_BROKER"] == "kafka://soak-kafka:9092"
    assert [c.name for c in stack.components()][:2] == ["redis", "worker"]


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@cache:6379/2", "redis://:***@cache:6379/2"),
        ("rediss://app:s3cret@cache.example:6380/0", "rediss://app:***@cache.example:6380/0"),
        ("redis://cache:6379/2", "redis://cache:6379/2"),
    ],
)
def test_the_redis_password_is_never_shown(tmp_path: Path, url: str, shown: str) -> None:
    """`imptrack up` prints the Redis URL; a password in it is masked."""
    s = Settings.from_env({"IMPTRACK_HOME": str(tmp_path), "REDIS_URL": url})
    assert s.redis == url and s.redis_shown == shown


def test_profiles_choose_the_group_timeouts(tmp_path: Path) -> None:
    """dev rejoins fast after a killed worker; production keeps patient timeouts."""
    dev = Settings.from_env({"IMPTRACK_HOME": str(tmp_path)})
    prod = Settings.from_env({"IMPTRACK_HOME": str(tmp_path), "IMPTRACK_PROFILE": "production"})
    assert dev.broker_session_timeout == 6.0 and prod.broker_session_timeout == 60.0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"EDGE_PORT": "http"}, "EDGE_PORT='http' is not a whole number"),
        ({"EDGE_PROCESSES": "0"}, "EDGE_PROCESSES=0 must be at least 1"),
        ({"IMPTRACK_PROFILE": "prod"}, "IMPTRACK_PROFILE='prod' is not one of dev, production"),
        ({"EXPORT_BATCH_SECONDS": "-1"}, "must be greater than 0"),
    ],
)
def test_bad_settings_say_which_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Settings.from_env(env)


def test_scaled_out_workers_and_forwarders_each_get_a_port_and_a_data_dir(tmp_path: Path) -> None:
    """WORKER_PROCESSES=2, FORWARDER_PROCESSES=2: instances 1 and 2 of each, on the base
    port and the next, each told its instance; a 3-node Kafka is three components."""
    env = {
        "IMPTRACK_HOME": str(tmp_path),
        "WORKER_PROCESSES": "2",
        "FORWARDER_PROCESSES": "2",
        "IMPTRACK_KAFKA_NODES": "3",
    }
    parts = {c.name: c for c in Stack(Settings.from_env(env), {}).components()}
    assert list(parts) == [
        "broker-1",
        "broker-2",
        "broker-3",
        "redis",
        "worker-1",
        "worker-2",
        "forwarder-1",
        "forwarder-2",
        "exporter",
        "edge",
    ]
    assert (parts["worker-1"].port, parts["worker-2"].port) == (16066, 16067)
    assert parts["forwarder-2"].env == {"IMPTRACK_INSTANCE": "2"}
    assert [parts[f"broker-{i}"].port for i in (1, 2, 3)] == [19092, 19094, 19096]
    second = Settings.from_env({**env, "IMPTRACK_INSTANCE": "2"})
    assert second.worker_data_dir == tmp_path / "data" / "worker-2"
    assert second.instance_port(second.forwarder_web_port) == 16069
    assert Settings.from_env(env).worker_data_dir == tmp_path / "data" / "worker"


def test_an_external_cluster_gets_three_replicas_two_in_sync(tmp_path: Path) -> None:
    """KAFKA_BROKER with several servers: Faust gets them as URLs, topics get RF 3."""
    s = Settings.from_env(
        {"IMPTRACK_HOME": str(tmp_path), "KAFKA_BROKER": "kafka://k1:9092,k2:9092"}
    )
    assert s.broker == "k1:9092,k2:9092"
    assert s.faust_broker == "kafka://k1:9092;kafka://k2:9092"
    assert (s.replication_factor, s.min_insync_replicas) == (3, 2)
    local = Settings.from_env({"IMPTRACK_HOME": str(tmp_path)})
    assert (local.replication_factor, local.min_insync_replicas) == (1, 1)


def test_every_topic_is_created_with_its_replicas_and_the_changelogs_compacted(
    tmp_path: Path,
) -> None:
    """What `up` and every worker or forwarder create before starting: the event
    topics, the one-partition catalog and the tables' changelogs, each with the
    cluster's replicas and two of three in sync."""
    s = Settings.from_env({"IMPTRACK_HOME": str(tmp_path), "IMPTRACK_KAFKA_NODES": "3"})
    specs = {spec.name: spec for spec in topic_specs(s)}
    assert set(specs) == {
        *kinds.EVENT_TOPICS,
        kinds.CATALOG_TOPIC,
        *kinds.CHANGELOG_TOPICS,
    }
    assert {
        (spec.replication_factor, spec.configs["min.insync.replicas"]) for spec in specs.values()
    } == {(3, "2")}
    assert specs[kinds.CATALOG_TOPIC].partitions == 1
    for name in (kinds.CATALOG_TOPIC, *kinds.CHANGELOG_TOPICS):
        assert specs[name].configs["cleanup.policy"] == "compact"
    for name in (*kinds.EVENT_TOPICS, *kinds.CHANGELOG_TOPICS):
        assert specs[name].partitions == s.topic_partitions


def test_a_worker_without_a_broker_says_where_it_looked(tmp_path: Path) -> None:
    """`imptrack worker` creates its topics first; with no broker there, one line
    saying which address and what to check, not a traceback."""
    env = {
        **os.environ,
        "IMPTRACK_HOME": str(tmp_path),
        "KAFKA_BROKER": f"127.0.0.1:{free_ports(1)[0]}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "worker"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "imptrack: could not create imptrack's topics on the Kafka at 127.0.0.1:" in done.stderr
    assert "Traceback" not in done.stderr


def test_make_status_with_nothing_running_says_so_plainly(tmp_path: Path) -> None:
    """One sentence naming the home and how to start, not "make: *** Error 1"."""
    root = Path(__file__).parents[2]
    env = {**os.environ, "IMPTRACK_HOME": str(tmp_path)}
    done = subprocess.run(
        ["make", "-s", "status"], cwd=root, capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    assert (
        done.stdout
        == f"nothing is running under {tmp_path}; `make up` (or `imptrack up`) starts it\n"
    )
    assert "make" not in done.stderr


@pytest.mark.parametrize("command", [["catalog", "export"], ["links", "1", "--affiliate", "1"]])
def test_a_catalog_command_without_a_broker_prints_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    """No aiokafka connection errors and no "Unclosed AIOKafkaConsumer" around it:
    the clients are closed before the command says the broker cannot be reached."""
    env = {
        **os.environ,
        "IMPTRACK_HOME": str(tmp_path),
        "KAFKA_BROKER": f"127.0.0.1:{free_ports(1)[0]}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", *command],
        capture_output=True, text=True, env=env, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("imptrack: cannot reach the broker at"), lines


@pytest.mark.parametrize(
    ("raw", "required"), [(None, False), ("", False), ("0", False), ("1", True), ("TRUE", True)]
)
def test_postback_security_required_is_a_switch(raw: str | None, required: bool) -> None:
    env = {} if raw is None else {"POSTBACK_SECURITY_REQUIRED": raw}
    assert Settings.from_env(env).postback_security_required is required


def test_a_setting_the_command_cannot_read_is_one_line_not_a_traceback() -> None:
    """A mistyped safety switch stops every command with what to write instead."""
    env = {**os.environ, "POSTBACK_SECURITY_REQUIRED": "maybe"}
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "imptrack: POSTBACK_SECURITY_REQUIRED='maybe' must be 1 or 0 "
        "(also true/false, yes/no, on/off)\n"
    )


def test_an_isolated_stacks_ports_are_all_different(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens on the ports chosen until the stack starts, so each choice
    avoids the ones before it. Here the random pick is forced into a narrow range,
    where a check of what listens alone would give the same port twice."""
    picks = iter([20_000, 20_000, 20_000, 20_001, 20_001, 20_002, 20_003, 20_004, 20_005] * 20)
    monkeypatch.setattr(probes.random, "randint", lambda low, high: next(picks))
    monkeypatch.setattr(probes, "free_ports", lambda count: [20_010, 20_011, 20_012][:count])
    s = isolated_stack(tmp_path, IMPTRACK_KAFKA_NODES="1").settings
    ports = [
        s.embedded_redis_port,
        s.exporter_port,
        s.edge_port,
        s.worker_web_port,
        s.worker_links_port,
        s.forwarder_web_port,
    ]
    assert len(set(ports)) == len(ports), ports


def test_a_port_block_never_overlaps_the_ports_taken() -> None:
    first = probes.free_port_block(3)
    again = probes.free_port_block(3, frozenset(range(first, first + 3)))
    assert not set(range(again, again + 3)) & set(range(first, first + 3))
