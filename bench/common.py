"""What the benchmarks share: a stack of their own, the load generator, the results."""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from app.catalog.local import apply_file
from app.ops import probes
from app.ops.stack import Stack, isolated_stack

RESULTS = Path(__file__).with_name("results")
QUICK = os.environ.get("QUICK", "") not in ("", "0")
CATCH_UP_SECONDS = 120.0
# Longer than the exporter's batch window (EXPORT_BATCH_SECONDS: 0.5 s, or 0.2 s in a
# QUICK run, whose figures are not judged and which should stay under a minute).
QUICK_EXPORT_BATCH_SECONDS = "0.2"
QUIET_SECONDS = 0.5 if QUICK else 1.0


def serve(argv: list[str], ready_url: str) -> subprocess.Popen[bytes]:
    """Start a server process and wait until ``ready_url`` answers (any status)."""
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not _answers(ready_url):
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            raise RuntimeError(f"{argv} did not start")
        time.sleep(0.1)
    return process


def _answers(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        urllib.request.urlopen(url, timeout=1).close()
    except urllib.error.HTTPError:
        return True  # any HTTP answer: it is up
    except OSError:
        return False
    return True


def load(
    url: str, rate: float, duration: float, connections: int = 64, urls: Path | None = None
) -> dict[str, Any]:
    """Run the load generator in a process of its own; its result. Rate 0: closed loop."""
    options = ["--rate", str(rate), "--duration", str(duration), "--connections", str(connections)]
    if urls is not None:
        options += ["--urls", str(urls)]
    out = subprocess.run(
        [sys.executable, "-m", "bench.loadgen", url, *options],
        check=True,
        capture_output=True,
        text=True,
        timeout=duration * 10 + 60,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in ("aiohttp", "aiokafka", "faust-streaming", "redis", "duckdb", "pyarrow"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


def write_result(name: str, result: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


@contextmanager
def bench_stack(**extra_env: str) -> Iterator[Stack]:
    """A stack of its own (Apache Kafka, Redis, worker, exporter, one edge) under a
    temporary home, up for the ``with`` block; ``make bench`` shares one among the
    benchmarks that need a running system."""
    # The benchmarks' advertiser sink (bench.sink) listens on 127.0.0.1, which the
    # forwarder refuses unless told otherwise (SSRF policy).
    env = {"FORWARD_ALLOWED_NETWORKS": "127.0.0.1/32", **extra_env}
    if QUICK:
        env.setdefault("EXPORT_BATCH_SECONDS", QUICK_EXPORT_BATCH_SECONDS)
    # SIGTERM (a timeout, a Ctrl-C'd make, CI) would end Python without the finally
    # below and leave Kafka, Redis and the workers running: exit through it instead.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    with tempfile.TemporaryDirectory(prefix="imptrack-bench-") as home:
        stack = isolated_stack(Path(home), **env)
        try:
            stack.up()
            yield stack
        finally:
            stack.down()


def apply_catalog(stack: Stack, yaml_text: str) -> None:
    """Make ``yaml_text`` the stack's catalog (``imptrack catalog apply``): each benchmark
    applies the advertisers, affiliates and offers it needs before it runs."""
    path = stack.settings.home / "bench-catalog.yaml"
    path.write_text(yaml_text)
    # What `imptrack catalog apply` runs, in this process: a CLI process would spend
    # two seconds of each QUICK run importing.
    applied = apply_file(stack.settings, path)
    if applied.errors:
        raise RuntimeError(f"the benchmark's catalog was refused: {applied.errors}")


async def fill_topic(
    broker: str, topic: str, records: list[tuple[str, bytes]], partitions: int
) -> None:
    """Create ``topic`` and ``topic-out`` (``partitions`` each) and write ``records``
    (key, value) to ``topic``, acknowledged: the input of a floor benchmark's app."""
    admin = AIOKafkaAdminClient(bootstrap_servers=broker)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(name, partitions, 1) for name in (topic, f"{topic}-out")]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", linger_ms=5)
    await producer.start()
    try:
        acks = [await producer.send(topic, value=v, key=k.encode()) for k, v in records]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()


@contextmanager
def sink_with_catalog(stack: Stack, catalog_of: Callable[[int], str]) -> Iterator[int]:
    """A running advertiser sink (bench.sink) on a free port, given to ``catalog_of`` for
    the catalog applied to the stack; the sink stops on the way out."""
    (port,) = probes.free_ports(1)
    sink = serve([sys.executable, "-m", "bench.sink", str(port)], f"http://127.0.0.1:{port}/count")
    try:
        apply_catalog(stack, catalog_of(port))
        yield port
    finally:
        sink.terminate()
        sink.wait(10)


def figure(
    name: str,
    value: float,
    unit: str,
    *,
    baseline: float | None = None,
    target: str,
    met: bool | None,
) -> dict[str, Any]:
    """One reported figure: the system's value, the bare baseline measured alongside it
    in the same run (None where the issue sets an absolute target only), their ratio
    (value / baseline, whichever way is better), the target in words and whether it
    was met (None: not judged, e.g. in a QUICK run)."""
    ratio = round(value / baseline, 3) if baseline else None
    return {
        "name": name,
        "value": value,
        "unit": unit,
        "baseline": baseline,
        "ratio": ratio,
        "target": target,
        "met": met,
    }


def exported(stack: Stack, kind: str) -> int:
    """Rows of ``kind`` (``impressions``, ``conversions``...) the exporter has stored."""
    status = probes.http_json(f"{stack.settings.exporter_url}/healthz")
    if status is None:
        raise RuntimeError("the exporter's /healthz is not answering")
    return int(status["exported"].get(kind, 0))


def caught_up(stack: Stack, kind: str, expected: int, timeout: float = CATCH_UP_SECONDS) -> float:
    """Wait until ``expected`` rows of ``kind`` are exported (or ``timeout``); seconds waited."""
    started = time.monotonic()
    while exported(stack, kind) < expected and time.monotonic() - started < timeout:
        time.sleep(0.25)
    return round(time.monotonic() - started, 2)


def quiet(stack: Stack, kind: str, timeout: float = CATCH_UP_SECONDS) -> int:
    """Rows of ``kind`` exported once the count stops moving (whatever an earlier
    benchmark left in the worker has been exported), or after ``timeout``."""
    deadline = time.monotonic() + timeout
    seen = exported(stack, kind)
    while time.monotonic() < deadline:
        time.sleep(QUIET_SECONDS)
        now = exported(stack, kind)
        if now == seen:
            break
        seen = now
    return seen


def median(runs: list[dict[str, Any]], key: str) -> float:
    """The median of ``key`` over a benchmark's rounds, to two decimals."""
    return round(float(statistics.median(r[key] for r in runs)), 2)
