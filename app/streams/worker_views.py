"""HTTP pages of the worker, for operators and ``imptrack up``."""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

import faust
from faust import web

from app.catalog.follower import CatalogFollower
from app.compat.faust_consumer import CurrentGenerationConsumer
from app.metrics.exposition import CONTENT_TYPE, exposition
from app.metrics.process import ProcessMetrics
from app.metrics.state import GroupLag, measure_tables


def serve(app: faust.App, catalog: CatalogFollower, lag: GroupLag) -> None:
    """Add the worker's ``/healthz`` and ``/metrics`` to ``app``, reporting on its
    ``catalog`` and its consumer group's ``lag``."""
    process = ProcessMetrics("worker")

    def close_lag(sender: Any, *_: Any, signal: Any, **__: Any) -> Awaitable[None]:
        # Its broker connections, opened at the first scrape, end with the process.
        return lag.close()

    # mode types connect()'s argument as a union of callables mypy matches none of.
    app.on_before_shutdown.connect(close_lag)  # type: ignore[arg-type]

    @app.page("/metrics")
    async def metrics(self: web.View, request: web.Request) -> Any:
        """Prometheus metrics: what the agents did (app/metrics/pipeline.py), the
        tables' keys and bytes and the group's lag read now, the process's costs."""
        process.sample()
        measure_tables(app.tables.values())
        await lag.measure()
        return self.bytes(exposition(), headers={"Content-Type": CONTENT_TYPE})

    @app.page("/healthz")
    async def healthz(self: web.View, request: web.Request) -> Any:
        """200 once the catalog is loaded, table recovery has completed and no
        rebalance is in progress, else 503.

        Faust serves pages before recovery finishes, so readiness is checked here.
        """
        recovered = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
        catalog_loaded = catalog.ready.is_set()
        body = {
            "status": "ok" if recovered and catalog_loaded and not app.rebalancing else "starting",
            "recovered": recovered,
            "catalog": catalog.status(),
            "rebalancing": app.rebalancing,
            "in_recovery": app.in_recovery,
            "assigned": sorted(
                f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives()
            ),
            "stale_acks_refused": CurrentGenerationConsumer.stale_acks_refused,
            "offset_gaps_seen": CurrentGenerationConsumer.gaps_seen,
            "offset_gaps_refetched": CurrentGenerationConsumer.gaps_refetched,
            "unacked_heads_refetched": CurrentGenerationConsumer.unacked_heads_refetched,
        }
        return self.json(body, status=200 if body["status"] == "ok" else 503)
