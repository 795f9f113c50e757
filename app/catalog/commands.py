"""What each admin operation changes, decided against the current catalog.

Pure functions: they validate, check references and return the entity and the
changes to write, or raise a :class:`~app.exceptions.CatalogError` and write
nothing. The admin API and ``imptrack catalog apply`` both go through them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from app.catalog.changes import (
    ACCESS_RULES,
    Change,
    Entity,
    access_change,
    advertiser_block_change,
    entity_change,
)
from app.catalog.model import AffiliatePostback, Catalog, Offer, Payment
from app.catalog.validation import (
    entity_id,
    parse_advertiser,
    parse_affiliate,
    parse_offer,
)
from app.exceptions import CatalogError, EntityExists, UnknownEntity

KINDS = ("advertiser", "affiliate", "offer")
_PARSERS: dict[str, Any] = {
    "advertiser": parse_advertiser,
    "affiliate": parse_affiliate,
    "offer": parse_offer,
}


def entities(catalog: Catalog, kind: str) -> dict[int, Any]:
    by_kind: dict[str, dict[int, Any]] = {
        "advertiser": catalog.advertisers,
        "affiliate": catalog.affiliates,
        "offer": catalog.offers,
    }
    return by_kind[kind]


def find(catalog: Catalog, kind: str, entity_id: int, field: str = "id") -> Any:
    entity = entities(catalog, kind).get(entity_id)
    if entity is None:
        raise UnknownEntity(field, f"there is no {kind} {entity_id}")
    return entity


def _check_references(catalog: Catalog, offer: Offer) -> None:
    """The offer's advertiser, and the affiliates its personal payments and postback
    overrides name, exist."""
    if offer.advertiser_id not in catalog.advertisers:
        raise CatalogError(
            "advertiser_id", f"there is no advertiser {offer.advertiser_id}; create it first"
        )
    named: tuple[tuple[str, tuple[Payment | AffiliatePostback, ...]], ...] = (
        ("payments", offer.payments),
        ("affiliate_postbacks", offer.affiliate_postbacks),
    )
    for field, items in named:
        for n, item in enumerate(items):
            for pid in item.affiliates:
                if pid not in catalog.affiliates:
                    raise CatalogError(
                        f"{field}[{n}].affiliates", f"there is no affiliate {pid}; create it first"
                    )


def create(catalog: Catalog, kind: str, data: Mapping[str, Any]) -> tuple[Entity, Change]:
    """A new entity; without an ``id`` it gets the next free one."""
    if not isinstance(data, Mapping):
        raise CatalogError(kind, "must be a JSON object")
    known = entities(catalog, kind)
    if "id" not in data:
        data = {**data, "id": max(known, default=0) + 1}
    elif entity_id(data["id"]) in known:
        raise EntityExists(
            "id", f"{kind} {data['id']} already exists; update it instead of creating it"
        )
    entity = _PARSERS[kind](data)
    if isinstance(entity, Offer):
        _check_references(catalog, entity)
    return entity, entity_change(entity)


def update(
    catalog: Catalog, kind: str, entity_id: int, data: Mapping[str, Any]
) -> tuple[Entity, Change]:
    """The entity with the fields in ``data`` changed; the others stay as they are."""
    entity = _PARSERS[kind](data, find(catalog, kind, entity_id))
    if isinstance(entity, Offer):
        _check_references(catalog, entity)
    return entity, entity_change(entity)


def delete(catalog: Catalog, kind: str, entity_id: int) -> tuple[Entity, Change]:
    """Deleting keeps the entity, with status ``deleted``: its history stays reportable."""
    entity = replace(find(catalog, kind, entity_id), status="deleted")
    return entity, entity_change(entity)


def set_access(catalog: Catalog, offer_id: int, pid: int, rule: str | None) -> Change:
    """Enable (``enabled``) or disable (``disabled``) an affiliate for an offer, or lift
    the rule (None)."""
    find(catalog, "offer", offer_id, "offer_id")
    find(catalog, "affiliate", pid, "pid")
    if rule is not None and rule not in ACCESS_RULES:
        raise CatalogError("rule", f"must be one of {', '.join(ACCESS_RULES)}, not {rule!r}")
    return access_change(offer_id, pid, rule)


def set_advertiser_block(catalog: Catalog, advertiser_id: int, pid: int, blocked: bool) -> Change:
    """Disable (or enable again) all of an advertiser's offers for one affiliate."""
    find(catalog, "advertiser", advertiser_id, "advertiser_id")
    find(catalog, "affiliate", pid, "pid")
    return advertiser_block_change(advertiser_id, pid, blocked)
