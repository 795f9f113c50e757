"""Health probes ``imptrack up`` waits on: is each service really serving?"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST_PORT = 10_000


def _ephemeral_range() -> tuple[int, int]:
    """The ports the kernel gives outgoing connections (Linux's default when unknown)."""
    try:
        low, high = (int(n) for n in EPHEMERAL_RANGE_FILE.read_text().split())
    except (OSError, ValueError):
        return 32_768, 60_999
    return low, high


def _bindable(ports: range) -> list[socket.socket] | None:
    """Sockets bound to every port of ``ports`` (the caller closes them), or None."""
    sockets: list[socket.socket] = []
    try:
        for port in ports:
            sock = socket.socket()
            sockets.append(sock)
            sock.bind(("127.0.0.1", port))
    except OSError:
        for sock in sockets:
            sock.close()
        return None
    return sockets


def free_port_block(count: int, taken: frozenset[int] = frozenset()) -> int:
    """The first of ``count`` consecutive ports that nothing listens on now (a local
    Kafka cluster's nodes take two ports each from the first).

    Chosen below the kernel's ephemeral range: a port from it (what binding port 0
    gives) can be taken by any outgoing connection's local end while its service is
    down, and a worker restarted after a SIGKILL then could not listen again (seen in
    test_scale_out: "address already in use" on the links server's port). None of
    ``taken`` is in it: ports chosen for another part, which nothing listens on yet.
    """
    low, _ = _ephemeral_range()
    top = low - count
    for _ in range(200):
        first = random.randint(LOWEST_PORT, top) if top > LOWEST_PORT else None
        if first is None:
            (first,) = _ports_from_the_kernel(1)
        if taken.intersection(range(first, first + count)):
            continue  # chosen already for another part, though nothing listens yet
        held = _bindable(range(first, first + count))
        if held is not None:
            for sock in held:
                sock.close()
            return first
    raise OSError(f"found no {count} free consecutive ports on 127.0.0.1")


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now, all different, below the ephemeral range (see
    :func:`free_port_block`)."""
    held: list[socket.socket] = []
    try:
        while len(held) < count:
            first = free_port_block(1)
            sockets = _bindable(range(first, first + 1))
            if sockets is not None:
                held += sockets
        return [sock.getsockname()[1] for sock in held]
    finally:
        for sock in held:
            sock.close()


def _ports_from_the_kernel(count: int) -> list[int]:
    """Ports the kernel picks (in its ephemeral range): where no range is left below it."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def http_json(url: str, timeout: float = 2.0) -> dict[str, Any] | None:
    """The JSON body of a 2xx answer, or None when the service is not (yet) healthy."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: dict[str, Any] = json.loads(response.read())
            return body
    except (OSError, urllib.error.URLError, ValueError):
        return None


async def _broker_ready(bootstrap: str) -> bool:
    # "Connection refused" is the expected answer while the broker starts.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=2000)
    try:
        await producer.start()
    except (KafkaError, OSError):
        return False
    finally:
        await producer.stop()
    return True


def broker_ready(bootstrap: str) -> bool:
    return asyncio.run(_broker_ready(bootstrap))


async def _redis_ready(url: str) -> bool:
    client = aioredis.from_url(url, socket_connect_timeout=1)
    try:
        return bool(await client.ping())
    except (OSError, aioredis.RedisError):
        return False
    finally:
        await client.aclose()


def redis_ready(url: str) -> bool:
    return asyncio.run(_redis_ready(url))


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int = 1
    configs: dict[str, str] = field(default_factory=dict)


async def _create_topics(bootstrap: str, specs: list[TopicSpec]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(
                spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_factor,
                topic_configs=spec.configs,
            )
            for spec in specs
            if spec.name not in existing
        ]
        if missing:
            # Another process may create them first; either way they exist.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


def create_topics(bootstrap: str, specs: list[TopicSpec]) -> None:
    """Create topics up front so the edge can produce before a worker ran."""
    asyncio.run(_create_topics(bootstrap, specs))
