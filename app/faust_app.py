"""The one Faust application; every agent, table and topic module imports it from here."""

from __future__ import annotations

from typing import Any

import faust

from app.faust_transport import KafkaTransport
from app.settings import settings

_s = settings()


class ImptrackApp(faust.App):
    """Faust's App with the consumer of :mod:`app.faust_transport`."""

    def _new_transport(self) -> Any:
        return KafkaTransport(self.conf.broker_consumer, self)


app = ImptrackApp(
    "imptrack",
    broker=f"kafka://{_s.broker}",
    store="rocksdb://",
    datadir=str(_s.worker_data_dir),
    topic_partitions=_s.topic_partitions,
    topic_replication_factor=1 if _s.kafka_broker is None else 3,
    broker_session_timeout=_s.broker_session_timeout,
    broker_rebalance_timeout=_s.broker_rebalance_timeout,
    broker_heartbeat_interval=min(3.0, _s.broker_session_timeout / 3),
    # The memory-only embedded broker cannot run InitProducerId, so no idempotent
    # producer and no exactly_once; effects are made idempotent downstream instead.
    producer_acks=-1,
    producer_linger_ms=5,
    consumer_auto_offset_reset="earliest",
    # The embedded Tansu broker reports a partition's end as the last batch's base
    # offset + 1, so a worker restarting with its local RocksDB state would be refused
    # as "ahead of the broker". Real Kafka reports true ends and keeps the check.
    recovery_consistency_check=_s.kafka_broker is not None,
    web_bind="127.0.0.1",
    web_port=_s.worker_web_port,
    web_in_thread=False,
    autodiscover=["agents", "app.worker_views"],
    origin="app",
)
