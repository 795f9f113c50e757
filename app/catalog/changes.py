"""Catalog changes as records of the compacted ``catalog`` topic.

Each entity and each access rule has one key, so compaction keeps exactly the
latest state of each; a rule that is lifted is a tombstone (``None`` value).

- ``advertiser:ID``, ``affiliate:ID``, ``offer:ID`` → the entity as JSON
- ``access:OFFER_ID:PID`` → ``{"offer_id", "pid", "rule": "enabled" | "disabled"}``
- ``advertiser_block:ADVERTISER_ID:PID`` → ``{"advertiser_id", "pid"}``
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from typing import Any

import orjson

from app.catalog.model import (
    Advertiser,
    Affiliate,
    AffiliatePostback,
    Catalog,
    Destination,
    Offer,
    Payment,
)
from app.catalog.validation import as_dict

log = logging.getLogger("imptrack.catalog")

ACCESS_RULES = ("enabled", "disabled")
Entity = Advertiser | Affiliate | Offer


@dataclass(frozen=True)
class Change:
    """One record for the catalog topic: the new state under ``key``, or a tombstone."""

    key: str
    value: dict[str, Any] | None

    def encode(self) -> tuple[bytes, bytes | None]:
        value = None if self.value is None else orjson.dumps(self.value)
        return self.key.encode(), value


def entity_change(entity: Entity) -> Change:
    kind = {Advertiser: "advertiser", Affiliate: "affiliate", Offer: "offer"}[type(entity)]
    return Change(f"{kind}:{entity.id}", as_dict(entity))


def access_change(offer_id: int, pid: int, rule: str | None) -> Change:
    """``rule`` is ``enabled``, ``disabled``, or None to lift the rule."""
    value = None if rule is None else {"offer_id": offer_id, "pid": pid, "rule": rule}
    return Change(f"access:{offer_id}:{pid}", value)


def advertiser_block_change(advertiser_id: int, pid: int, blocked: bool) -> Change:
    value = {"advertiser_id": advertiser_id, "pid": pid} if blocked else None
    return Change(f"advertiser_block:{advertiser_id}:{pid}", value)


def _known_fields(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    # Fields a newer imptrack wrote are ignored rather than refused, so an older
    # process can still follow the topic during a rolling upgrade.
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _affiliate_postbacks(items: Any) -> tuple[AffiliatePostback, ...]:
    # Lists in JSON, tuples in the model: a list read back would differ from the
    # entity it was written from, and export then apply would write a change.
    return tuple(
        AffiliatePostback(p["url"], tuple(p.get("statuses", ())), tuple(p.get("affiliates", ())))
        for p in items
    )


def _affiliate(data: dict[str, Any]) -> Affiliate:
    data = _known_fields(Affiliate, data)
    data["postback_urls"] = _affiliate_postbacks(data.get("postback_urls", ()))
    return Affiliate(**data)


def _offer(data: dict[str, Any]) -> Offer:
    data = _known_fields(Offer, data)
    data["additional_impressions_urls"] = tuple(
        Destination(**d) for d in data.get("additional_impressions_urls", ())
    )
    data["payments"] = tuple(
        Payment(**{**p, "affiliates": tuple(p.get("affiliates", ()))})
        for p in data.get("payments", ())
    )
    data["postback_ip_whitelist"] = tuple(data.get("postback_ip_whitelist", ()))
    data["affiliate_postbacks"] = _affiliate_postbacks(data.get("affiliate_postbacks", ()))
    return Offer(**data)


def apply_change(catalog: Catalog, change: Change) -> None:
    """Bring ``catalog`` to the state ``change`` records (values were validated when
    they were written, so they are trusted here). An entity's tombstone removes it."""
    kind, _, rest = change.key.partition(":")
    value = change.value
    if kind in ("advertiser", "affiliate", "offer"):
        table: dict[int, Any] = getattr(catalog, f"{kind}s")
        if value is None:
            table.pop(int(rest), None)
        else:
            entity = _ENTITY_READERS[kind](value)
            table[entity.id] = entity
    elif kind == "access":
        offer_id, pid = (int(part) for part in rest.split(":"))
        pair = (offer_id, pid)
        catalog.enabled.discard(pair)
        catalog.disabled.discard(pair)
        if value is not None:
            (catalog.enabled if value["rule"] == "enabled" else catalog.disabled).add(pair)
    elif kind == "advertiser_block":
        advertiser_id, pid = (int(part) for part in rest.split(":"))
        if value is None:
            catalog.advertiser_blocks.discard((advertiser_id, pid))
        else:
            catalog.advertiser_blocks.add((advertiser_id, pid))
    else:
        raise ValueError(f"unknown catalog record {change.key!r}")


def current_state(catalog: Catalog, key: str) -> Change:
    """The change that would restore ``key`` to its state in ``catalog`` (to undo a
    later change)."""
    kind, _, rest = key.partition(":")
    if kind in ("advertiser", "affiliate", "offer"):
        entity = getattr(catalog, f"{kind}s").get(int(rest))
        return Change(key, None if entity is None else as_dict(entity))
    if kind == "access":
        offer_id, pid = (int(part) for part in rest.split(":"))
        if (offer_id, pid) in catalog.enabled:
            return access_change(offer_id, pid, "enabled")
        return access_change(
            offer_id, pid, "disabled" if (offer_id, pid) in catalog.disabled else None
        )
    if kind == "advertiser_block":
        advertiser_id, pid = (int(part) for part in rest.split(":"))
        return advertiser_block_change(
            advertiser_id, pid, (advertiser_id, pid) in catalog.advertiser_blocks
        )
    raise ValueError(f"unknown catalog record {key!r}")


_ENTITY_READERS: dict[str, Any] = {
    "advertiser": lambda v: Advertiser(**_known_fields(Advertiser, v)),
    "affiliate": _affiliate,
    "offer": _offer,
}


def decode(key: bytes | None, value: bytes | None) -> Change:
    """A change from raw topic bytes; raises ``ValueError`` for anything malformed."""
    if key is None:
        raise ValueError("catalog record without a key")
    decoded = None if value is None else orjson.loads(value)
    if decoded is not None and not isinstance(decoded, dict):
        raise ValueError(f"catalog record {key!r} is not a JSON object")
    return Change(key.decode(), decoded)
