"""Catalog operations run from the command line, straight against the catalog topic."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from aiokafka.errors import KafkaError

from app.catalog.destination_addresses import AddressPolicy
from app.catalog.files import parse_text, to_document
from app.catalog.follower import CatalogFollower
from app.catalog.offer_links import offer_links
from app.catalog.service import AppliedDocument, CatalogService
from app.catalog.writer import CatalogWriter
from app.exceptions import CatalogError, CatalogUnavailable
from app.settings import Settings

T = TypeVar("T")
TIMEOUT_SECONDS = 30.0


async def _with_service(settings: Settings, run: Callable[[CatalogService], Awaitable[T]]) -> T:
    follower = CatalogFollower(settings.broker)
    writer = CatalogWriter(settings.broker, TIMEOUT_SECONDS)
    following = asyncio.create_task(follower.run())
    try:
        await writer.start()
    except KafkaError as exc:
        # Closed before saying so: left open, the clients are reported "Unclosed"
        # on stderr after the one line that matters.
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError):
            await following
        with contextlib.suppress(KafkaError):
            await writer.stop()
        raise CatalogUnavailable(
            f"cannot reach the broker at {settings.broker} ({exc}); is imptrack up?"
        ) from None
    try:
        policy = AddressPolicy(settings.forwarding.allowed_networks)
        service = CatalogService(
            follower,
            writer,
            TIMEOUT_SECONDS,
            address_refusal=policy.literal_refusal,
            postback_security_required=settings.postback_security_required,
        )
        return await run(service)
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError, KafkaError):
            await following
        await writer.stop()


def apply_file(settings: Settings, path: Path) -> AppliedDocument:
    """Apply a catalog file, under this process's ``POSTBACK_SECURITY_REQUIRED`` (the
    command writes to the catalog topic itself, not through the edge)."""
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise CatalogError(str(path), f"cannot be read ({exc.strerror})") from None
    document = parse_text(text, path.name)
    return asyncio.run(_with_service(settings, lambda service: service.apply_document(document)))


def offer_links_of(settings: Settings, offer_id: int, pid: int) -> dict[str, Any]:
    """``imptrack links``: the offer's links for an affiliate, from the catalog topic."""

    async def read(service: CatalogService) -> dict[str, Any]:
        return offer_links(await service.catalog(), offer_id, pid, settings.links_base_url)

    return asyncio.run(_with_service(settings, read))


def export_document(settings: Settings) -> dict[str, Any]:
    async def read(service: CatalogService) -> dict[str, Any]:
        return to_document(await service.catalog())

    return asyncio.run(_with_service(settings, read))
