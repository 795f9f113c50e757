"""The edge's aiohttp application factory and process runner."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import signal
from collections.abc import AsyncIterator

import redis.asyncio as aioredis
import uvloop
from aiohttp import web

from app import logs
from app.attribution.verdicts import VerdictWaiter
from app.catalog.destination_addresses import AddressPolicy
from app.catalog.follower import CatalogFollower
from app.catalog.service import CatalogService
from app.catalog.writer import CatalogWriter
from app.compat import install
from app.edge import malformed_log
from app.edge.admin.routes import create_admin_app
from app.edge.api_keys import ApiKeyGate
from app.edge.click import click
from app.edge.envelope_writer import EnvelopeWriter
from app.edge.keys import (
    API_KEY_GATE,
    CATALOG,
    CATALOG_SERVICE,
    IMPRESSIONS,
    LINKS,
    PLACEMENT,
    PRODUCER,
    REDIS,
    SETTINGS,
    VERDICTS,
)
from app.edge.links import LinkFinder
from app.edge.pixel import pixel
from app.edge.placement import Placement
from app.edge.postback import postback
from app.edge.producer import EventProducer
from app.events import kinds
from app.exceptions import StackError
from app.ids import IdGenerator, IdSeal
from app.installation_secrets import load_api_key, load_id_key
from app.metrics.exposition import process_ended, share_between_processes
from app.metrics.http import measured, metrics_page
from app.metrics.process import ProcessMetrics
from app.settings import Settings

# Bounds on what a client may send (see README, "Request limits").
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
CATALOG_LOAD_SECONDS = 60.0
REDIS_TIMEOUT = 0.25


async def _producer_ctx(app: web.Application) -> AsyncIterator[None]:
    s = app[SETTINGS]
    producer = EventProducer(s.broker, s.edge_linger_ms, s.edge_produce_timeout)
    await producer.start()
    try:
        await _check_partitions(producer, s.topic_partitions)
    except StackError:
        await producer.stop()
        raise
    app[PRODUCER] = producer
    app[IMPRESSIONS] = EnvelopeWriter(
        producer,
        app[PLACEMENT],
        kinds.IMPRESSIONS.topic,
        kinds.IMPRESSIONS.enveloped.current,
        s.edge_envelope_events,
        s.edge_envelope_ms,
    )
    yield
    await app[IMPRESSIONS].flush()
    await producer.stop()


async def _check_partitions(producer: EventProducer, expected: int) -> None:
    """Every ID the edge makes names its partition (app.edge.placement): a topic with
    another partition count than the setting would strand or refuse events."""
    for topic in sorted(kinds.EDGE_TOPICS):
        found = await producer.partition_count(topic)
        if found == 0:
            raise StackError(f"topic {topic} does not exist: run `imptrack up` first")
        if found != expected:
            raise StackError(
                f"topic {topic} has {found} partitions, IMPTRACK_TOPIC_PARTITIONS is "
                f"{expected}: the partition count is fixed for a deployment "
                '(docs/OPERATIONS.md, "The partition count"); set it to the topics\' count'
            )


async def _redis_ctx(app: web.Application) -> AsyncIterator[None]:
    # Short timeouts: nothing on a request's path waits long for Redis.
    client = aioredis.from_url(
        app[SETTINGS].redis, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT
    )
    app[REDIS] = client
    links = LinkFinder(client, app[SETTINGS].topic_partitions)
    await links.start()
    app[LINKS] = links
    # Verdicts arrive on a subscription that waits indefinitely: a client of its own
    # without the short read timeout.
    verdict_client = aioredis.from_url(
        app[SETTINGS].redis, socket_connect_timeout=REDIS_TIMEOUT, health_check_interval=30
    )
    waiter = VerdictWaiter(verdict_client)
    await waiter.start()
    app[VERDICTS] = waiter
    yield
    await links.stop()
    await waiter.stop()
    await verdict_client.aclose()
    await client.aclose()


async def _catalog_ctx(app: web.Application) -> AsyncIterator[None]:
    """Follow the catalog; serve only once it is loaded (no request may be judged
    against a half-read catalog)."""
    s = app[SETTINGS]
    follower = CatalogFollower(s.broker)
    task = asyncio.create_task(follower.run(), name="catalog-follower")
    writer = CatalogWriter(s.broker, s.edge_produce_timeout)
    await writer.start()
    loaded = asyncio.create_task(follower.ready.wait())
    await asyncio.wait(
        [task, loaded], timeout=CATALOG_LOAD_SECONDS, return_when=asyncio.FIRST_COMPLETED
    )
    loaded.cancel()
    if not follower.ready.is_set():
        task.cancel()
        await writer.stop()
        if task.done() and not task.cancelled() and task.exception():
            raise StackError(f"the catalog follower failed: {task.exception()}")
        raise StackError(f"the catalog was not loaded within {CATALOG_LOAD_SECONDS:.0f} s")
    app[CATALOG] = follower
    app[CATALOG_SERVICE] = CatalogService(
        follower,
        writer,
        s.edge_produce_timeout,
        address_refusal=AddressPolicy(s.forwarding.allowed_networks).literal_refusal,
        postback_security_required=s.postback_security_required,
    )
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await writer.stop()


async def healthz(request: web.Request) -> web.Response:
    """Healthy while the catalog is loaded and the last produce, if any, was acknowledged."""
    producer = request.app[PRODUCER]
    follower = request.app[CATALOG]
    body = {
        "status": "ok",
        "broker": request.app[SETTINGS].broker,
        "catalog": follower.status(),
        # Without the subscription postbacks are still stored and decided, but
        # answered "pending": degraded, not unhealthy.
        "postback_verdicts": "subscribed"
        if request.app[VERDICTS].subscribed.is_set()
        else f"not subscribed: {request.app[VERDICTS].last_error or 'starting'}",
    }
    if producer.last_error is not None:
        return web.json_response(
            {**body, "status": "unhealthy", "broker": producer.last_error}, status=503
        )
    return web.json_response(body)


async def _process_metrics_ctx(app: web.Application) -> AsyncIterator[None]:
    # Another edge process may be the one scraped: each records its own figures.
    async with ProcessMetrics("edge").sampled():
        yield


def create_edge_app(settings: Settings) -> web.Application:
    app = web.Application(client_max_size=64 * 1024, middlewares=[measured])
    app[SETTINGS] = settings
    app[API_KEY_GATE] = ApiKeyGate(load_api_key(settings), logging.getLogger("imptrack.admin"))
    # Made here, in the process that serves: each edge process draws its own node bits.
    app[PLACEMENT] = Placement(
        IdGenerator(IdSeal(load_id_key(settings))), settings.topic_partitions
    )
    app.cleanup_ctx.append(_producer_ctx)
    app.cleanup_ctx.append(_catalog_ctx)
    app.cleanup_ctx.append(_redis_ctx)
    app.router.add_get("/imp", pixel)
    app.router.add_get("/click", click)
    app.router.add_route("GET", "/postback", postback)
    app.router.add_route("POST", "/postback", postback)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_page)
    app.cleanup_ctx.append(_process_metrics_ctx)
    app.add_subapp("/api/v1", create_admin_app())
    return app


def run_edge(settings: Settings) -> None:
    """Serve one edge process; several share the port through ``SO_REUSEPORT``."""
    install(settings)
    # A spawned edge process starts with no logging of its parent's.
    logs.configure(settings, "edge")
    malformed_log.install()
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        create_edge_app(settings),
        host=settings.edge_host,
        port=settings.edge_port,
        reuse_port=True,
        access_log=None,
        print=None,
        shutdown_timeout=5,
        handler_cancellation=False,
        max_line_size=MAX_LINE_SIZE,
        max_field_size=MAX_FIELD_SIZE,
    )


def run_edge_processes(settings: Settings) -> None:
    """Run ``EDGE_PROCESSES`` edge processes on one port; stop them all on SIGTERM/SIGINT."""
    if settings.edge_processes == 1:
        run_edge(settings)
        return
    # Each process keeps its metrics in a file of this directory; the one scraped
    # merges them (app/metrics/exposition.py).
    share_between_processes(settings.run_dir / f"edge-{settings.instance}-metrics")
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(target=run_edge, args=(settings,), name=f"edge-{n}")
        for n in range(settings.edge_processes)
    ]
    for child in children:
        child.start()

    def stop(signum: int, frame: object) -> None:
        for child in children:
            child.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for child in children:
        child.join()
        if child.pid is not None:
            process_ended(child.pid)
