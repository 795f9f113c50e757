"""The Faust application; every agent, table and topic module imports it from here.

Two processes run it, each in a role of its own (``FAUST_ROLE``, set by ``imptrack
worker`` and ``imptrack forwarder`` before this module is imported):

- ``worker``: the impressions, clicks, postbacks and conversions agents and their
  tables (consumer group ``imptrack``).
- ``forwarder``: scheduling and delivering forward tasks (group
  ``imptrack-forwarder``). Delivering is slow network work with its own Redis round
  trips; in a process of its own it neither takes CPU from the worker's stream nor
  stops when the worker is restarted, and each can be killed and restarted alone.
"""

from __future__ import annotations

import os
from typing import Any

import faust

from app.compat import install
from app.compat.faust_consumer import KafkaTransport
from app.compat.rocksdb_store import store_url
from app.events import topic_names
from app.settings import settings

_s = settings()
install(_s)

ROLE_VARIABLE = "FAUST_ROLE"

ROLES = {
    # role: (application id, the modules whose agents, tasks and pages it runs, its
    # local data directory, its web port)
    "worker": (
        topic_names.WORKER_APP_ID,
        [
            "agents.impressions",
            "agents.clicks",
            "agents.postbacks",
            "agents.conversions",
            "app.streams.worker_views",
        ],
        _s.worker_data_dir,
        _s.instance_port(_s.worker_web_port),
    ),
    "forwarder": (
        "imptrack-forwarder",
        ["agents.forwarder", "app.streams.forwarder_views"],
        _s.forwarder_data_dir,
        _s.instance_port(_s.forwarder_web_port),
    ),
}
role = os.environ.get(ROLE_VARIABLE, "worker")
if role not in ROLES:
    raise SystemExit(f"{ROLE_VARIABLE}={role!r}: expected one of {', '.join(ROLES)}")
_app_id, _modules, _datadir, _web_port = ROLES[role]


class ImptrackApp(faust.App):
    """Faust's App with the consumer of :mod:`app.compat.faust_consumer`."""

    def _new_transport(self) -> Any:
        return KafkaTransport(self.conf.broker_consumer, self)


app = ImptrackApp(
    _app_id,
    broker=_s.faust_broker,
    # RocksDB with one memory budget for every table (app/compat/rocksdb_store.py).
    store=store_url(),
    datadir=str(_datadir),
    topic_partitions=_s.topic_partitions,
    topic_replication_factor=_s.replication_factor,
    broker_session_timeout=_s.broker_session_timeout,
    broker_rebalance_timeout=_s.broker_rebalance_timeout,
    broker_heartbeat_interval=min(3.0, _s.broker_session_timeout / 3),
    # acks=all with an idempotent producer (app.compat.faust_consumer.IdempotentProducer).
    producer_acks=-1,
    producer_linger_ms=5,
    consumer_auto_offset_reset="earliest",
    # A topic missing from the metadata when the group was joined gets no partitions
    # until the next refresh (aiokafka's default: every 5 minutes); see
    # topic_names.CHANGELOG_TOPICS.
    consumer_metadata_max_age_ms=10_000,
    # No leader-only timers here: no leader topic (one less topic that can be missing
    # from the metadata at the first join).
    topic_disable_leader=True,
    # The forwarder only reads (its effects are deduplicated in Redis); the worker's
    # guarantee is a setting.
    processing_guarantee=_s.processing_guarantee if role == "worker" else "at_least_once",
    web_bind="127.0.0.1",
    web_port=_web_port,
    web_in_thread=False,
    autodiscover=_modules,
    # Faust also scans the origin; the package "app" would import both roles' pages
    # (and with them the forwarder's agent into the worker). This module adds nothing.
    origin="app.streams.faust_app",
)
