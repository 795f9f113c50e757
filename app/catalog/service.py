"""Catalog operations with their effects: decide, write, and wait until in effect here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from app.catalog.changes import Change
from app.catalog.files import plan_document
from app.catalog.follower import CatalogFollower
from app.catalog.model import Catalog
from app.catalog.writer import CatalogWriter
from app.exceptions import CatalogError, CatalogUnavailable

T = TypeVar("T")


class CatalogService:
    """Runs a :mod:`~app.catalog.commands` function and writes what it decided.

    An answer comes only once this process's own follower has applied the change,
    so a client that reads back what it wrote sees it. Operations of one process
    run one at a time: each is decided against the catalog the previous one left
    (two creates without ids must not both take the same next id).
    """

    def __init__(self, follower: CatalogFollower, writer: CatalogWriter, timeout: float) -> None:
        self.follower = follower
        self.writer = writer
        self.timeout = timeout
        self._lock = asyncio.Lock()

    async def catalog(self) -> Catalog:
        """The catalog, once it is fully loaded."""
        try:
            async with asyncio.timeout(self.timeout):
                await self.follower.ready.wait()
        except TimeoutError:
            raise CatalogUnavailable(
                "the catalog is still loading from the catalog topic; retry shortly"
            ) from None
        return self.follower.catalog

    async def apply_document(self, document: Any) -> tuple[int, list[CatalogError]]:
        """Apply a catalog document (see :mod:`app.catalog.files`): the number of
        changes written, or every error in it (then nothing was written)."""
        errors: list[CatalogError] = []

        def decide(catalog: Catalog) -> tuple[int, list[Change]]:
            changes, found = plan_document(catalog, document)
            errors.extend(found)
            return len(changes), changes

        return await self.change(decide), errors

    async def change(self, decide: Callable[[Catalog], tuple[T, list[Change]]]) -> T:
        """``decide`` returns the result and the changes it needs (raising writes nothing)."""
        async with self._lock:
            result, changes = decide(await self.catalog())
            if changes:
                partition, offset = await self.writer.write(changes)
                try:
                    async with asyncio.timeout(self.timeout):
                        await self.follower.wait_applied(partition, offset)
                except TimeoutError:
                    raise CatalogUnavailable(
                        "the change was written but is not yet in effect here; read it back shortly"
                    ) from None
            return result
