"""Every setting imptrack reads from the environment, in one place.

Processes started by ``imptrack up`` inherit the environment of the command, so
one set of variables configures the edge, the workers and the exporter alike.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from app.exceptions import ConfigurationError
from app.ids import ENVELOPE_SLOTS, MAX_PARTITIONS

PROFILES = ("dev", "production")
PROCESSING_GUARANTEES = ("at_least_once", "exactly_once")
LOG_FORMATS = ("text", "json")


def _base_url(env: Mapping[str, str], name: str) -> str | None:
    """An http(s) address with no query or fragment, without its trailing slash."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigurationError(
            f"{name}={raw!r} must be an http or https address such as "
            "https://track.network.example, with no query"
        )
    return raw.rstrip("/")


def _int(
    env: Mapping[str, str], name: str, default: int, minimum: int = 0, maximum: int | None = None
) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigurationError(f"{name}={value} must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ConfigurationError(f"{name}={value} must be at most {maximum}")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigurationError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigurationError(f"{name}={value} must be greater than 0")
    return value


_SWITCH = {"1": True, "true": True, "yes": True, "on": True}
_SWITCH |= {"0": False, "false": False, "no": False, "off": False}


def _switch(env: Mapping[str, str], name: str) -> bool:
    """On or off; off when unset. A typo must not leave a safety switch silently off."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return False
    if raw.lower() not in _SWITCH:
        raise ConfigurationError(f"{name}={raw!r} must be 1 or 0 (also true/false, yes/no, on/off)")
    return _SWITCH[raw.lower()]


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    """One of ``choices``; the first when unset."""
    value = env.get(name) or choices[0]
    if value not in choices:
        raise ConfigurationError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value


def _networks(env: Mapping[str, str], name: str) -> tuple[IPv4Network | IPv6Network, ...]:
    raw = env.get(name) or ""
    networks = []
    for item in raw.replace(",", " ").split():
        try:
            networks.append(ip_network(item, strict=False))
        except ValueError:
            raise ConfigurationError(
                f"{name}: {item!r} is not an IP network (e.g. 127.0.0.1/32, 10.0.0.0/8)"
            ) from None
    return tuple(networks)


@dataclass(frozen=True)
class ForwardingSettings:
    """How impressions are delivered to advertisers' destination URLs."""

    max_attempts: int
    backoff_seconds: float  # delay before the 2nd attempt; doubles each time, with jitter
    backoff_max_seconds: float
    connect_timeout: float
    timeout: float  # a whole attempt, redirects included
    concurrency: int  # requests in flight per forwarder process
    host_concurrency: int  # requests in flight per destination host, across forwarders
    breaker_failures: int  # consecutive failures that open a host's circuit breaker
    breaker_seconds: float  # how long an open breaker holds deliveries back
    dedup_seconds: int  # how long a forwarded impression is remembered against replays
    # Loopback, private and link-local destinations are refused unless listed here.
    allowed_networks: tuple[IPv4Network | IPv6Network, ...]

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ForwardingSettings:
        return cls(
            max_attempts=_int(env, "FORWARD_MAX_ATTEMPTS", 5, 1),
            backoff_seconds=_float(env, "FORWARD_BACKOFF_SECONDS", 1.0),
            backoff_max_seconds=_float(env, "FORWARD_BACKOFF_MAX_SECONDS", 300.0),
            connect_timeout=_float(env, "FORWARD_CONNECT_TIMEOUT", 3.0),
            timeout=_float(env, "FORWARD_TIMEOUT", 10.0),
            concurrency=_int(env, "FORWARD_CONCURRENCY", 256, 1),
            host_concurrency=_int(env, "FORWARD_HOST_CONCURRENCY", 32, 1),
            breaker_failures=_int(env, "FORWARD_BREAKER_FAILURES", 5, 1),
            breaker_seconds=_float(env, "FORWARD_BREAKER_SECONDS", 30.0),
            dedup_seconds=_int(env, "FORWARD_DEDUP_SECONDS", 86_400, 1),
            allowed_networks=_networks(env, "FORWARD_ALLOWED_NETWORKS"),
        )


def node_ports(first_port: int, nodes: int) -> tuple[tuple[int, int], ...]:
    """The (client, controller) ports of each node of the local Kafka cluster: node
    1's client port first, then two ports a node."""
    return tuple((first_port + 2 * n, first_port + 2 * n + 1) for n in range(nodes))


MAX_REPLICAS = 3
"""Replicas of a topic on a cluster of three nodes or more, as production runs."""


def local_replicas(nodes: int) -> int:
    """Replicas of every topic on the local cluster of ``nodes`` nodes."""
    return min(nodes, MAX_REPLICAS)


def min_insync_replicas(replicas: int) -> int:
    """With three replicas one may be down while writes go on, and an acknowledged
    record is still on two machines."""
    return 2 if replicas >= 3 else 1


@dataclass(frozen=True)
class Settings:
    """Typed settings; build with :meth:`from_env`."""

    home: Path
    profile: str
    log_level: str
    log_format: str
    """``text`` (for people, the default) or ``json`` (one object a line, app/logs.py)."""
    # An external cluster or Redis when set; otherwise ``imptrack up`` starts its own.
    kafka_broker: str | None
    redis_url: str | None
    # The local Apache Kafka (app/ops/local_kafka): node 1's client port (each node takes
    # two ports from there), how many nodes, each node's heap, and Maven's repository.
    embedded_broker_port: int
    kafka_nodes: int
    kafka_heap_mb: int
    maven_repo: Path | None
    # Kept across installations: the Kafka classpath Maven resolved.
    cache_dir: Path
    embedded_redis_port: int
    topic_partitions: int
    edge_host: str
    edge_port: int
    edge_processes: int
    edge_trusted_proxy_hops: int
    edge_linger_ms: int
    # An envelope of impressions closes at this many or after this long (app.edge.envelope_writer).
    edge_envelope_events: int
    edge_envelope_ms: float
    edge_produce_timeout: float
    # Worker and forwarder processes ``imptrack up`` starts; each is an instance
    # (from 1) with its own web port (the base port + instance - 1) and data dir.
    worker_web_port: int
    # The worker's links server (app/streams/links_server.py): the address it listens
    # on and the edge reaches it at (instance k: the port + k - 1).
    worker_links_host: str
    worker_links_port: int
    forwarder_web_port: int
    worker_processes: int
    forwarder_processes: int
    instance: int
    worker_fetch_wait_ms: int  # see app.compat.faust_consumer.WorkerConsumerThread
    worker_fetch_min_bytes: int  # likewise
    worker_catalog_fetch_wait_ms: int  # see app.catalog.current
    broker_session_timeout: float
    broker_rebalance_timeout: float
    exporter_port: int
    export_batch_rows: int
    export_batch_seconds: float
    # DuckDB's memory limit in the exporter (its default is 80% of the machine's).
    exporter_memory_mb: int
    # RocksDB's memory in the worker, all tables together (app/compat/rocksdb_store.py).
    worker_table_memory_mb: int
    # How often the exporter publishes the analysts' copy of the database
    # (reports/snapshot.py); never more often than 20 times what a copy takes.
    snapshot_seconds: float
    # The admin API's key; without it one is generated into ``api_key_file``.
    api_key: str | None
    # The key that seals IDs (app.ids); without it one is generated into ``id_key_file``.
    id_key: str | None
    # The pixel tells every caller its aimp_id and rejection reason (a staging network
    # where affiliates test links); otherwise only callers holding the API key.
    pixel_debug: bool
    # How long the edge waits for a postback's verdict before answering "pending".
    postback_verdict_seconds: float
    # Refuse, instead of warning about, an offer that takes view-through conversions
    # with neither a postback token nor an IP whitelist (app.catalog.postback_security).
    postback_security_required: bool
    # Faust's processing guarantee in the worker (docs/ARCHITECTURE.md, "Exactly-once
    # in the worker": at_least_once with idempotent effects is the default).
    processing_guarantee: str
    forwarding: ForwardingSettings
    public_base_url: str | None = None  # where affiliates reach the edge (generated links)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        profile = env.get("IMPTRACK_PROFILE", "dev")
        if profile not in PROFILES:
            raise ConfigurationError(
                f"IMPTRACK_PROFILE={profile!r} is not one of {', '.join(PROFILES)}"
            )
        # A killed dev worker blocks its group for the whole session timeout;
        # production keeps Kafka's patient defaults so GC pauses do not rebalance.
        session_default = 6.0 if profile == "dev" else 60.0
        return cls(
            home=Path(env.get("IMPTRACK_HOME") or Path.cwd() / "var").resolve(),
            profile=profile,
            log_level=env.get("LOG_LEVEL", "info").lower(),
            log_format=_choice(env, "LOG_FORMAT", LOG_FORMATS),
            kafka_broker=env.get("KAFKA_BROKER") or None,
            redis_url=env.get("REDIS_URL") or None,
            embedded_broker_port=_int(env, "IMPTRACK_BROKER_PORT", 19092, 1),
            kafka_nodes=_int(env, "IMPTRACK_KAFKA_NODES", 1, 1),
            kafka_heap_mb=_int(env, "IMPTRACK_KAFKA_HEAP_MB", 512, 128),
            maven_repo=Path(env["IMPTRACK_MAVEN_REPO"]).resolve()
            if env.get("IMPTRACK_MAVEN_REPO")
            else None,
            cache_dir=Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "imptrack",
            embedded_redis_port=_int(env, "IMPTRACK_REDIS_PORT", 16379, 1),
            # Fixed for a deployment: every ID names its partition (app.ids).
            topic_partitions=_int(env, "IMPTRACK_TOPIC_PARTITIONS", 4, 1, MAX_PARTITIONS),
            edge_host=env.get("EDGE_HOST", "127.0.0.1"),
            edge_port=_int(env, "EDGE_PORT", 8080, 1),
            edge_processes=_int(env, "EDGE_PROCESSES", 1, 1),
            edge_trusted_proxy_hops=_int(env, "EDGE_TRUSTED_PROXY_HOPS", 0),
            edge_linger_ms=_int(env, "EDGE_LINGER_MS", 2),
            edge_envelope_events=_int(env, "EDGE_ENVELOPE_EVENTS", 200, 1, ENVELOPE_SLOTS),
            edge_envelope_ms=_float(env, "EDGE_ENVELOPE_MS", 2.0),
            edge_produce_timeout=_float(env, "EDGE_PRODUCE_TIMEOUT", 5.0),
            worker_web_port=_int(env, "WORKER_WEB_PORT", 16066, 1),
            worker_links_host=env.get("WORKER_LINKS_HOST", "127.0.0.1"),
            worker_links_port=_int(env, "WORKER_LINKS_PORT", 16170, 1),
            forwarder_web_port=_int(env, "FORWARDER_WEB_PORT", 16068, 1),
            worker_processes=_int(env, "WORKER_PROCESSES", 1, 1),
            forwarder_processes=_int(env, "FORWARDER_PROCESSES", 1, 1),
            instance=_int(env, "IMPTRACK_INSTANCE", 1, 1),
            worker_fetch_wait_ms=_int(env, "WORKER_FETCH_WAIT_MS", 50, 1),
            worker_fetch_min_bytes=_int(env, "WORKER_FETCH_MIN_BYTES", 1, 1),
            worker_catalog_fetch_wait_ms=_int(env, "WORKER_CATALOG_FETCH_WAIT_MS", 10, 1),
            broker_session_timeout=_float(env, "BROKER_SESSION_TIMEOUT", session_default),
            broker_rebalance_timeout=_float(env, "BROKER_REBALANCE_TIMEOUT", session_default),
            exporter_port=_int(env, "EXPORTER_PORT", 16067, 1),
            export_batch_rows=_int(env, "EXPORT_BATCH_ROWS", 250_000, 1),
            export_batch_seconds=_float(env, "EXPORT_BATCH_SECONDS", 0.5),
            exporter_memory_mb=_int(env, "EXPORTER_MEMORY_MB", 512, 64),
            worker_table_memory_mb=_int(env, "WORKER_TABLE_MEMORY_MB", 64, 8),
            snapshot_seconds=_float(env, "REPORT_SNAPSHOT_SECONDS", 10.0),
            api_key=env.get("IMPTRACK_API_KEY") or None,
            id_key=env.get("IMPTRACK_ID_KEY") or None,
            pixel_debug=_switch(env, "PIXEL_DEBUG"),
            postback_verdict_seconds=_float(env, "POSTBACK_VERDICT_SECONDS", 2.0),
            postback_security_required=_switch(env, "POSTBACK_SECURITY_REQUIRED"),
            processing_guarantee=_choice(env, "WORKER_PROCESSING_GUARANTEE", PROCESSING_GUARANTEES),
            forwarding=ForwardingSettings.from_env(env),
            public_base_url=_base_url(env, "PUBLIC_BASE_URL"),
        )

    @property
    def data_dir(self) -> Path:
        return self.home / "data"

    @property
    def log_dir(self) -> Path:
        return self.home / "log"

    @property
    def run_dir(self) -> Path:
        return self.home / "run"

    @property
    def duckdb_path(self) -> Path:
        """The analysts' copy: a snapshot the exporter replaces every few seconds."""
        return self.data_dir / "imptrack.duckdb"

    @property
    def exporter_db_path(self) -> Path:
        """The exporter's own database, locked while it runs."""
        return self.data_dir / "exporter" / "imptrack.duckdb"

    @property
    def api_key_file(self) -> Path:
        return self.home / "api-key"

    @property
    def id_key_file(self) -> Path:
        return self.home / "id-key"

    def _instance_dir(self, role: str) -> Path:
        return self.data_dir / (role if self.instance == 1 else f"{role}-{self.instance}")

    @property
    def worker_data_dir(self) -> Path:
        """This worker instance's RocksDB tables (two workers on one machine must not
        share them: RocksDB locks its files)."""
        return self._instance_dir("worker")

    @property
    def forwarder_data_dir(self) -> Path:
        return self._instance_dir("forwarder")

    def instance_port(self, base_port: int, instance: int | None = None) -> int:
        """The web port of an instance (this process's by default)."""
        return base_port + (self.instance if instance is None else instance) - 1

    def instance_url(self, base_port: int, instance: int) -> str:
        return f"http://127.0.0.1:{self.instance_port(base_port, instance)}"

    @property
    def broker(self) -> str:
        """The Kafka bootstrap servers in use, ``host:port[,host:port...]``."""
        if self.kafka_broker:
            return ",".join(
                server.strip().removeprefix("kafka://")
                for server in self.kafka_broker.replace(";", ",").split(",")
                if server.strip()
            )
        # The Kafka cluster `imptrack up` starts (app/ops/local_kafka).
        ports = node_ports(self.embedded_broker_port, self.kafka_nodes)
        return ",".join(f"127.0.0.1:{client}" for client, _ in ports)

    @property
    def faust_broker(self) -> str:
        """The bootstrap servers as Faust takes them: URLs separated by ``;``."""
        return ";".join(f"kafka://{server}" for server in self.broker.split(","))

    @property
    def replication_factor(self) -> int:
        """Replicas of every topic, as Faust and :mod:`app.ops.topic_specs` create them:
        three on an external cluster, as many as the local cluster has nodes (up to
        three) otherwise."""
        return MAX_REPLICAS if self.kafka_broker else local_replicas(self.kafka_nodes)

    @property
    def min_insync_replicas(self) -> int:
        return min_insync_replicas(self.replication_factor)

    @property
    def redis(self) -> str:
        return self.redis_url or f"redis://127.0.0.1:{self.embedded_redis_port}/0"

    @property
    def redis_shown(self) -> str:
        """The Redis URL to print: its password, if it has one, is not for terminals or
        logs."""
        parts = urlsplit(self.redis)
        if parts.password is None:
            return self.redis
        user = f"{parts.username}:" if parts.username else ":"
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit(parts._replace(netloc=f"{user}***@{host}"))

    @property
    def edge_url(self) -> str:
        return f"http://{self.edge_host}:{self.edge_port}"

    @property
    def links_base_url(self) -> str:
        """The address in generated links: PUBLIC_BASE_URL, else the edge's own."""
        return self.public_base_url or self.edge_url

    @property
    def exporter_url(self) -> str:
        return f"http://127.0.0.1:{self.exporter_port}"

    @property
    def worker_url(self) -> str:
        return f"http://127.0.0.1:{self.worker_web_port}"

    @property
    def forwarder_url(self) -> str:
        return f"http://127.0.0.1:{self.forwarder_web_port}"


@cache
def settings() -> Settings:
    """The settings of this process, read once from its environment."""
    return Settings.from_env()
