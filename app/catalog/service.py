"""Catalog operations with their effects: decide, write, and wait until in effect here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from app.catalog.changes import Change
from app.catalog.files import plan_document
from app.catalog.follower import CatalogFollower
from app.catalog.model import Catalog
from app.catalog.validation import AddressRefusal, refused_postback_addresses
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

    def __init__(
        self,
        follower: CatalogFollower,
        writer: CatalogWriter,
        timeout: float,
        address_refusal: AddressRefusal | None = None,
    ) -> None:
        self.follower = follower
        self.writer = writer
        self.timeout = timeout
        # Affiliate postback URLs on addresses the forwarder refuses are refused when
        # written (validation.refused_postback_addresses); None: not checked here.
        self.address_refusal = address_refusal
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
            for change in changes:
                kind, _, entity_id = change.key.partition(":")
                found += [
                    CatalogError(f"{kind} {entity_id} {e.field}", e.problem)
                    for e in self._refused_addresses(change)
                ]
            errors.extend(found)
            return (0, []) if found else (len(changes), changes)

        return await self.change(decide), errors

    async def change(self, decide: Callable[[Catalog], tuple[T, list[Change]]]) -> T:
        """``decide`` returns the result and the changes it needs (raising writes nothing)."""
        async with self._lock:
            result, changes = decide(await self.catalog())
            for change in changes:
                for error in self._refused_addresses(change):
                    raise error
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

    def _refused_addresses(self, change: Change) -> list[CatalogError]:
        if self.address_refusal is None or change.value is None:
            return []
        return refused_postback_addresses(change.value, self.address_refusal)
