"""Catalog operations with their effects: decide, write, and wait until in effect here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.catalog import postback_security
from app.catalog.changes import Change, Entity, apply_change
from app.catalog.files import plan_document
from app.catalog.follower import CatalogFollower
from app.catalog.model import Catalog, Offer
from app.catalog.validation import AddressRefusal, refused_postback_addresses
from app.catalog.writer import CatalogWriter
from app.exceptions import CatalogError, CatalogUnavailable

T = TypeVar("T")


@dataclass(frozen=True)
class AppliedDocument:
    """What applying a catalog document did: the changes written, or every error in
    it (then nothing was written); and, once applied, a warning per offer of the
    catalog left taking view-through conversions from anyone."""

    written: int
    errors: list[CatalogError] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class CatalogService:
    """Runs a :mod:`~app.catalog.commands` function and writes what it decided.

    An answer comes only once this process's own follower has applied the change,
    so a client that reads back what it wrote sees it. Operations of one process
    run one at a time: each is decided against the catalog the previous one left
    (two creates without ids must not both take the same next id).

    ``postback_security_required`` is the network's ``POSTBACK_SECURITY_REQUIRED``:
    an offer left taking view-through conversions from anyone is refused, not just
    warned about (:mod:`app.catalog.postback_security`).
    """

    def __init__(
        self,
        follower: CatalogFollower,
        writer: CatalogWriter,
        timeout: float,
        *,
        postback_security_required: bool,
        address_refusal: AddressRefusal | None = None,
    ) -> None:
        self.follower = follower
        self.writer = writer
        self.timeout = timeout
        self.postback_security_required = postback_security_required
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

    async def apply_document(self, document: Any) -> AppliedDocument:
        """Apply a catalog document (see :mod:`app.catalog.files`)."""
        required = self.postback_security_required

        def decide(catalog: Catalog) -> tuple[AppliedDocument, list[Change]]:
            changes, errors = plan_document(catalog, document, postback_security_required=required)
            for change in changes:
                kind, _, entity_id = change.key.partition(":")
                errors += [
                    CatalogError(f"{kind} {entity_id} {e.field}", e.problem)
                    for e in self._refused_addresses(change)
                ]
            if errors:
                return AppliedDocument(0, errors), []
            after = catalog.copy()
            for change in changes:
                apply_change(after, change)
            warnings = postback_security.catalog_warnings(after, required)
            return AppliedDocument(len(changes), warnings=warnings), changes

        return await self.change(decide)

    async def change_entity(
        self, decide: Callable[[Catalog], tuple[Entity, Change]]
    ) -> tuple[Entity, list[str]]:
        """Create or change one entity (a :mod:`~app.catalog.commands` function): the
        entity, with a warning when it is an offer left taking view-through
        conversions from anyone (refused instead when the network requires)."""

        def judged(catalog: Catalog) -> tuple[tuple[Entity, list[str]], list[Change]]:
            entity, change = decide(catalog)
            warnings = (
                postback_security.judge(entity, self.postback_security_required)
                if isinstance(entity, Offer)
                else []
            )
            return (entity, warnings), [change]

        return await self.change(judged)

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
