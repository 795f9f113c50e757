"""The Faust application of a stream process, built from its settings and role.

Two processes run one, each in a role of its own:

- the worker (``imptrack worker``, :func:`app.streams.worker.build_worker`): the
  impressions, clicks, postbacks and conversions agents and their tables
  (consumer group ``imptrack``);
- the forwarder (``imptrack forwarder``, :func:`app.streams.forwarder.build_forwarder`):
  scheduling and delivering forward tasks and affiliate postbacks (group
  ``imptrack-forwarder``). Delivering is slow network work with its own Redis round
  trips; in a process of its own it neither takes CPU from the worker's stream nor
  stops when the worker is restarted, and each can be killed and restarted alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from app.compat import install
from app.compat.faust_consumer import KafkaTransport
from app.compat.faust_flow import QueueKeepingApp
from app.compat.faust_producer import RunningProducerApp
from app.compat.faust_worker import LevelKeepingWorker
from app.compat.rocksdb_store import store_url
from app.events import kinds
from app.logs import faust_logging_config
from app.settings import Settings


@dataclass(frozen=True)
class Role:
    """What tells the worker's and the forwarder's Faust apps apart."""

    app_id: str
    data_dir: Path
    web_port: int
    processing_guarantee: str


class ImptrackApp(RunningProducerApp, QueueKeepingApp):
    """Faust's App with the consumer of :mod:`app.compat.faust_consumer`, the
    producer hand-over of :mod:`app.compat.faust_producer` and the flow control of
    :mod:`app.compat.faust_flow`."""

    logging_config: dict[str, Any] | None = None
    """What its worker merges into Faust's logging (app/logs.py); None: Faust's own."""

    def _new_transport(self) -> Any:
        return KafkaTransport(self.conf.broker_consumer, self)


def build_faust_app(settings: Settings, role: Role) -> ImptrackApp:
    """An app with nothing in it yet: the role's factory declares its topics, tables,
    agents and pages. The library patches it runs on are installed first."""
    install(settings)
    app = ImptrackApp(
        role.app_id,
        broker=settings.faust_broker,
        # RocksDB with one memory budget for every table (app/compat/rocksdb_store.py).
        store=store_url(),
        datadir=str(role.data_dir),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.replication_factor,
        broker_session_timeout=settings.broker_session_timeout,
        broker_rebalance_timeout=settings.broker_rebalance_timeout,
        broker_heartbeat_interval=min(3.0, settings.broker_session_timeout / 3),
        # acks=all with an idempotent producer (app.compat.faust_consumer.IdempotentProducer).
        producer_acks=-1,
        producer_linger_ms=5,
        # Envelopes (40-50 kB each) many to a batch: aiokafka keeps one request in flight
        # per broker with one batch per partition in it, so at Faust's 16 kB each
        # envelope was a round trip of its own (bench.pipeline: 2,260-3,193
        # impressions/s before, 3,339-6,347 after, alternating runs on a loaded machine).
        producer_max_batch_size=512 * 1024,
        consumer_auto_offset_reset="earliest",
        # A topic missing from the metadata when the group was joined gets no partitions
        # until the next refresh (aiokafka's default: every 5 minutes); see
        # app.events.kinds.CHANGELOG_TOPICS.
        consumer_metadata_max_age_ms=10_000,
        # No leader-only timers here: no leader topic (one less topic that can be missing
        # from the metadata at the first join).
        topic_disable_leader=True,
        processing_guarantee=role.processing_guarantee,
        web_bind="127.0.0.1",
        web_port=role.web_port,
        web_in_thread=False,
        # Everything is declared by the role's factory; nothing is found by scanning.
        autodiscover=False,
        # The root logger stays at LOG_LEVEL (app/compat/faust_worker.py).
        Worker=LevelKeepingWorker,
    )
    process = {kinds.WORKER_APP_ID: "worker", kinds.FORWARDER_APP_ID: "forwarder"}
    app.logging_config = faust_logging_config(settings, process.get(role.app_id, role.app_id))
    return app


def redis_client(settings: Settings) -> aioredis.Redis:
    """A process's Redis client, shared by its agents and tasks (one connection pool)."""
    return aioredis.from_url(settings.redis, socket_timeout=10, socket_connect_timeout=3)
