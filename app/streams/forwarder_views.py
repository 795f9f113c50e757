"""HTTP pages of the forwarder process, for operators and ``imptrack up``."""

from __future__ import annotations

from typing import Any

import faust
from faust import web

from app.forwarding.forwarder import Forwarder
from app.forwarding.outbox import DeliveryLogShipper


def serve(app: faust.App, forwarder: Forwarder, shipper: DeliveryLogShipper) -> None:
    """Add the forwarder's ``/healthz`` to ``app``."""

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
