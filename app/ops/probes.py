"""Health probes ``imptrack up`` waits on: is each service really serving?"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (held open together, so they differ)."""
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for sock in sockets:
        sock.close()
    return ports


def free_port_block(count: int) -> int:
    """The first of ``count`` consecutive ports that nothing listens on now (a local
    Kafka cluster's nodes take two ports each from the first)."""
    for _ in range(100):
        (first,) = free_ports(1)
        if first + count > 65535:
            continue
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise OSError(f"found no {count} free consecutive ports on 127.0.0.1")


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
