"""HTTP pages of the forwarder process, for operators and ``imptrack up``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from typing import Any

import faust
from faust import web
from redis.exceptions import RedisError

from app.forwarding.forwarder import Forwarder
from app.forwarding.outbox import DeliveryLogShipper
from app.metrics.delivery import OPEN_BREAKERS
from app.metrics.exposition import CONTENT_TYPE, exposition
from app.metrics.process import ProcessMetrics
from app.metrics.state import GroupLag

log = logging.getLogger("imptrack.forwarder")
BREAKERS_TIMEOUT = 2.0


def serve(app: faust.App, forwarder: Forwarder, shipper: DeliveryLogShipper, lag: GroupLag) -> None:
    """Add the forwarder's ``/healthz`` and ``/metrics`` to ``app``."""
    process = ProcessMetrics("forwarder")

    def close_lag(sender: Any, *_: Any, signal: Any, **__: Any) -> Awaitable[None]:
        # Its broker connections, opened at the first scrape, end with the process.
        return lag.close()

    # mode types connect()'s argument as a union of callables mypy matches none of.
    app.on_before_shutdown.connect(close_lag)  # type: ignore[arg-type]

    @app.page("/metrics")
    async def metrics(self: web.View, request: web.Request) -> Any:
        """Prometheus metrics: deliveries by outcome and their latency
        (app/metrics/pipeline.py), open circuit breakers and the group's lag read
        now, the process's costs."""
        process.sample()
        await lag.measure()
        try:
            OPEN_BREAKERS.set(
                await asyncio.wait_for(forwarder.schedule.open_breakers(), BREAKERS_TIMEOUT)
            )
        except (RedisError, OSError, TimeoutError) as exc:
            # The gauge keeps its last value; /healthz says Redis does not answer.
            log.warning("could not count open circuit breakers: %s", exc)
        return self.bytes(exposition(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> Any:
        """200 once the forwarder has joined its group (its first assignment is taken
        up), no rebalance is in progress and Redis (the delivery schedule) answers,
        else 503; the delivery schedule's figures, or why Redis did not answer,
        either way."""
        started = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        forwarding = {**await forwarder.status(), "log_shipped_here": shipper.shipped}
        if "error" in forwarding["schedule"]:
            status = "unhealthy: the delivery schedule in Redis does not answer"
        elif started and not app.rebalancing:
            status = "ok"
        else:
            status = "starting"
        body = {
            "status": status,
            "started": started,
            "rebalancing": app.rebalancing,
            "assigned": sorted(
                f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives()
            ),
            "forwarding": forwarding,
        }
        return self.json(body, status=200 if body["status"] == "ok" else 503)
