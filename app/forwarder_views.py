"""HTTP pages of the forwarder process, for operators and ``imptrack up``."""

from __future__ import annotations

from typing import Any

from faust import web

from agents.forwarder import forwarder, shipper
from app.faust_app import app


@app.page("/healthz")
async def healthz(self: web.View, request: web.Request) -> Any:
    """200 once the forwarder has joined its group (its first assignment is taken up)
    and no rebalance is in progress, else 503; the delivery schedule's figures either
    way."""
    started = app.tables.recovery.completed.is_set()  # type: ignore[attr-defined]
    body = {
        "status": "ok" if started and not app.rebalancing else "starting",
        "started": started,
        "rebalancing": app.rebalancing,
        "assigned": sorted(f"{tp.topic}:{tp.partition}" for tp in app.assignor.assigned_actives()),
        "forwarding": {**await forwarder.status(), "log_shipped_here": shipper.shipped},
    }
    return self.json(body, status=200 if body["status"] == "ok" else 503)
