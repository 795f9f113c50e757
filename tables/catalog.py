"""The catalog as every worker holds it: the whole ``catalog`` topic, in memory.

Not a Faust GlobalTable: the edge (which is not a Faust app) must hold the same
catalog the same way, so both run :class:`~app.catalog.follower.CatalogFollower`
(see docs/ARCHITECTURE.md, "The catalog").
"""

from __future__ import annotations

from app.catalog.follower import CatalogFollower
from app.faust_app import app
from app.settings import settings

catalog = CatalogFollower(settings().broker)


@app.task  # type: ignore[untyped-decorator]
async def follow_catalog() -> None:
    await catalog.run()
