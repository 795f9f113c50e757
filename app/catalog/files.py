"""Catalog files (YAML or JSON): the whole catalog as one document, and back.

A document has up to three lists, applied in this order so that references
resolve: ``advertisers``, ``affiliates`` (with ``blocked_advertisers``: advertiser
ids the affiliate may not run) and ``offers`` (with ``enabled_affiliates`` and
``disabled_affiliates``: pids). An entity that exists is updated with the fields
given, a new one is created; a rule list, when given, becomes exactly the rules of
its offer or affiliate. ``imptrack catalog export`` writes the same shape.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import yaml

from app.catalog import commands, postback_security
from app.catalog.changes import Change, apply_change
from app.catalog.model import Catalog, Offer
from app.catalog.validation import as_dict, entity_id
from app.exceptions import CatalogError

SECTIONS = ("advertisers", "affiliates", "offers")
_RULE_LISTS = {
    "affiliates": ("blocked_advertisers",),
    "offers": ("enabled_affiliates", "disabled_affiliates"),
}


def parse_text(text: str, name: str) -> Any:
    """A document from YAML or JSON text (JSON is YAML too, but its errors read better)."""
    try:
        if name.endswith(".json"):
            return json.loads(text)
        return yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise CatalogError(
            name, f"is not valid {'JSON' if name.endswith('.json') else 'YAML'}: {exc}"
        ) from None


def to_document(catalog: Catalog) -> dict[str, list[dict[str, Any]]]:
    def blocked(pid: int) -> list[int]:
        return sorted(a for a, p in catalog.advertiser_blocks if p == pid)

    def rule(offer_id: int, pairs: set[tuple[int, int]]) -> list[int]:
        return sorted(p for o, p in pairs if o == offer_id)

    return {
        "advertisers": [as_dict(a) for _, a in sorted(catalog.advertisers.items())],
        "affiliates": [
            {**as_dict(a), "blocked_advertisers": blocked(a.id)}
            for _, a in sorted(catalog.affiliates.items())
        ],
        "offers": [
            {
                **as_dict(o),
                "enabled_affiliates": rule(o.id, catalog.enabled),
                "disabled_affiliates": rule(o.id, catalog.disabled),
            }
            for _, o in sorted(catalog.offers.items())
        ],
    }


def plan_document(
    catalog: Catalog, document: Any, *, postback_security_required: bool = False
) -> tuple[list[Change], list[CatalogError]]:
    """The changes that bring ``catalog`` to what ``document`` says, or every error in
    it (then no change may be written). With ``postback_security_required`` every offer
    the document names must end up protected against forged view-through conversions
    (:mod:`.postback_security`), whether the document changes it or not: the file says
    the offer is to be so."""
    if not isinstance(document, Mapping):
        return [], [
            CatalogError("catalog", "must be an object with advertisers, affiliates, offers")
        ]
    errors = [
        CatalogError(name, f"is not a section of a catalog file; known: {', '.join(SECTIONS)}")
        for name in document
        if name not in SECTIONS
    ]
    work = catalog.copy()
    changes: list[Change] = []

    def record(new: list[Change]) -> None:
        for change in new:
            apply_change(work, change)
        changes.extend(new)

    for section in SECTIONS:
        items = document.get(section) or []
        if not isinstance(items, list):
            errors.append(CatalogError(section, "must be a list"))
            continue
        seen: set[Any] = set()
        for n, item in enumerate(items):
            where = f"{section}[{n}]"
            try:
                # Items without an id are each a new entity, with the next free id.
                if isinstance(item, Mapping) and "id" in item:
                    entity_id(item["id"])  # true is not 1: no entity is taken for another
                    if item["id"] in seen:
                        raise CatalogError(
                            "id", f"{item['id']} appears more than once in {section}"
                        )
                    seen.add(item["id"])
                record(_plan_item(work, section, item, postback_security_required))
            except CatalogError as exc:
                errors.append(CatalogError(f"{where}.{exc.field}", exc.problem))
    return ([] if errors else changes), errors


def _plan_item(
    work: Catalog, section: str, item: Any, postback_security_required: bool
) -> list[Change]:
    if not isinstance(item, Mapping):
        raise CatalogError("item", "must be an object")
    kind = section.removesuffix("s")
    rule_lists = {name: item[name] for name in _RULE_LISTS.get(section, ()) if name in item}
    fields = {k: v for k, v in item.items() if k not in rule_lists}
    if "id" in fields and fields["id"] in commands.entities(work, kind):
        entity, change = commands.update(work, kind, fields["id"], fields)
    else:
        entity, change = commands.create(work, kind, fields)
    if isinstance(entity, Offer) and postback_security_required:
        postback_security.require_protection(entity)
    # Applying a file twice writes nothing the second time.
    changes = [] if entity == commands.entities(work, kind).get(entity.id) else [change]
    apply_change(work, change)
    if section == "affiliates" and "blocked_advertisers" in rule_lists:
        wanted = _ids(rule_lists["blocked_advertisers"], "blocked_advertisers")
        current = {a for a, p in work.advertiser_blocks if p == entity.id}
        changes += [
            commands.set_advertiser_block(work, a, entity.id, a in wanted)
            for a in sorted(current ^ wanted)
        ]
    if section == "offers":
        changes += _access_changes(work, entity.id, rule_lists)
    return changes


def _access_changes(work: Catalog, offer_id: int, rule_lists: dict[str, Any]) -> list[Change]:
    """A given list replaces the rules of its kind; the other kind stays as it is."""
    current = {p: "enabled" for o, p in work.enabled if o == offer_id}
    current |= {p: "disabled" for o, p in work.disabled if o == offer_id}
    wanted: dict[int, str] = dict(current)
    given: dict[str, set[int]] = {}
    for name, rule in (("enabled_affiliates", "enabled"), ("disabled_affiliates", "disabled")):
        if name in rule_lists:
            given[rule] = _ids(rule_lists[name], name)
            wanted = {p: r for p, r in wanted.items() if r != rule}
    if both := given.get("enabled", set()) & given.get("disabled", set()):
        raise CatalogError("disabled_affiliates", f"pid {min(both)} is also in enabled_affiliates")
    for rule, pids in given.items():
        wanted |= dict.fromkeys(pids, rule)
    return [
        commands.set_access(work, offer_id, pid, wanted.get(pid))
        for pid in sorted(current.keys() | wanted.keys())
        if current.get(pid) != wanted.get(pid)
    ]


def _ids(value: Any, field: str) -> set[int]:
    if not isinstance(value, list) or any(
        isinstance(v, bool) or not isinstance(v, int) for v in value
    ):
        raise CatalogError(field, "must be a list of ids")
    return set(value)
