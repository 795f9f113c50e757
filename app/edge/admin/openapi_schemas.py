"""The admin API's JSON shapes as JSON Schema, from the catalog's own statuses and
limits (app.catalog.model, app.catalog.validation): what a request may send, and
exactly what an answer holds (validation.as_dict)."""

from __future__ import annotations

from app.catalog.changes import ACCESS_RULES
from app.catalog.model import (
    ACCESS_MODES,
    MAX_ID,
    OFFER_STATUSES,
    PARTNER_STATUSES,
    PAYMENT_TYPES,
)
from app.catalog.validation import (
    AFFILIATE_POSTBACK_MACROS,
    IMPRESSION_MACROS,
    MAX_ADDITIONAL_URLS,
    MAX_AFFILIATE_POSTBACKS,
    MAX_DURATION_SECONDS,
    MAX_URL_LENGTH,
    TRACKING_MACROS,
    TRAFFICBACK_MACROS,
)
from app.edge.openapi import Schema, ref
from app.events.statuses import CONVERSION_STATUS_LABELS

NO_CONTROL_CHARS = "^[^\\u0000-\\u001F\\u007F]*$"


def _object(properties: dict[str, Schema], required: tuple[str, ...] = ()) -> Schema:
    # Closed: the API refuses a field it does not know, and answers only these.
    schema: Schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    return schema


def _answer(properties: dict[str, Schema]) -> Schema:
    """An answer's object: every field is always there."""
    return _object(properties, tuple(properties))


def _text(max_length: int, description: str) -> Schema:
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": NO_CONTROL_CHARS,
        "description": f"{description}; not blank, no control characters",
    }


def _nullable(schema: Schema) -> Schema:
    return {"anyOf": [schema, {"type": "null"}]}


def _ids(description: str) -> Schema:
    return {"type": "array", "items": ref("Id"), "uniqueItems": True, "description": description}


URL = _text(MAX_URL_LENGTH, "an http or https URL")


def _url(macros: frozenset[str], answer: bool) -> Schema:
    """A URL as answered, or as one may be sent: http(s), a host, and in its path,
    query or fragment only the ``{macros}`` of its kind of URL."""
    if answer:
        return URL
    macro = "|".join(sorted(macros))
    return {
        **URL,
        "pattern": (
            "^https?://[a-z0-9]+([.-][a-z0-9]+)*(:[1-9][0-9]{0,3})?"
            f"([/?#]([A-Za-z0-9._~!$&'()*+,;=:@%/?#-]|\\{{({macro})\\}})*)?$"
        ),
        "description": f"an http or https URL; its macros: {', '.join(sorted(macros))}",
    }


STATUSES = {
    "type": "array",
    "items": {"enum": list(CONVERSION_STATUS_LABELS)},
    "minItems": 1,
    "uniqueItems": True,
    "description": "the conversion statuses notified (left out: every status)",
}
_DURATION_IN = {
    "anyOf": [
        {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_SECONDS},
        {"type": "string", "pattern": "^\\s*[0-9]+[smhd]?\\s*$"},
    ],
    "description": f"seconds, or a duration like 90m, 24h, 30d; at most {MAX_DURATION_SECONDS} s",
}
_DURATION_OUT = {"type": "integer", "minimum": 1, "maximum": MAX_DURATION_SECONDS}
_MONEY_IN = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
    "description": "a decimal amount of at least 0",
}
_MONEY_OUT = {"type": "string", "description": "the decimal amount, as text (exact)"}
_CURRENCY = {"type": "string", "pattern": "^[A-Z]{3}$", "description": "e.g. USD"}


def _payment(answer: bool) -> Schema:
    fields = {
        "type": {"enum": list(PAYMENT_TYPES)},
        "revenue": _MONEY_OUT if answer else _MONEY_IN,
        "payout": _MONEY_OUT if answer else _MONEY_IN,
        "currency": _CURRENCY,
        "goal": _text(64, "the goal") if answer else {"type": ["string", "integer"]},
        "affiliates": _ids("a personal payment: for these affiliates (pids) only"),
    }
    if answer:
        return _object(fields, ("type", "revenue", "payout", "currency", "goal"))
    return _object(fields, ("type", "revenue", "payout"))


def _postback(answer: bool, on_offer: bool) -> Schema:
    url = _url(AFFILIATE_POSTBACK_MACROS, answer)
    fields = {"url": url, "statuses": STATUSES}
    if on_offer:
        fields["affiliates"] = _ids("for these affiliates only (left out: every affiliate)")
    shape = _object(fields, ("url",))
    return shape if answer else {"anyOf": [url, shape]}


def _partner_fields(statuses: tuple[str, ...]) -> dict[str, Schema]:
    return {"id": ref("Id"), "name": _text(255, "the name"), "status": {"enum": list(statuses)}}


def _affiliate_fields(answer: bool) -> dict[str, Schema]:
    return {
        **_partner_fields(PARTNER_STATUSES),
        "postback_urls": {
            "type": "array",
            "items": _postback(answer, on_offer=False),
            "maxItems": MAX_AFFILIATE_POSTBACKS,
        },
    }


def _offer_fields(answer: bool) -> dict[str, Schema]:
    return {
        "id": ref("Id"),
        "title": _text(255, "the title"),
        "advertiser_id": ref("Id"),
        "status": {"enum": list(OFFER_STATUSES)},
        "access": {"enum": list(ACCESS_MODES)},
        "allow_impressions": {"type": "boolean"},
        "impressions_url": _nullable(_url(IMPRESSION_MACROS, answer)),
        "additional_impressions_urls": {
            "type": "array",
            "items": _answer(
                {
                    "url": _url(IMPRESSION_MACROS, answer),
                    "weight": {"type": "integer", "minimum": 1, "maximum": 100},
                }
            ),
            "maxItems": MAX_ADDITIONAL_URLS,
            "description": "weights add up to at most 100; the main URL takes the rest",
        },
        "tracking_url": _nullable(_url(TRACKING_MACROS, answer)),
        "trafficback_url": _nullable(_url(TRAFFICBACK_MACROS, answer)),
        "view_through_window": _DURATION_OUT if answer else _DURATION_IN,
        "click_session": _DURATION_OUT if answer else _DURATION_IN,
        "payments": {"type": "array", "items": _payment(answer)},
        "postback_token": _nullable(_text(128, "the secret of postbacks' secure hash")),
        "postback_ip_whitelist": {
            "type": "array",
            "items": {"type": "string"},
            "description": "IP addresses or networks postbacks may come from",
        },
        "affiliate_postbacks": {
            "type": "array",
            "items": _postback(answer, on_offer=True),
            "maxItems": MAX_AFFILIATE_POSTBACKS,
        },
    }


def _rule_lists(kind: str) -> dict[str, Schema]:
    if kind == "affiliate":
        return {"blocked_advertisers": _ids("advertisers whose offers it may not run")}
    if kind == "offer":
        return {
            "enabled_affiliates": _ids("pids enabled for it"),
            "disabled_affiliates": _ids("pids disabled from it"),
        }
    return {}


_WARNINGS = {
    "type": "array",
    "items": {"type": "string"},
    "description": "what the change left weak, for the operator to fix (often none)",
}
ERROR_FIELDS: dict[str, Schema] = {
    "error": {"type": "string", "description": "what was wrong and what to do"},
    "field": {"type": ["string", "null"], "description": "the input it was wrong in"},
}


def entity_fields(kind: str, *, answer: bool) -> dict[str, Schema]:
    """The fields of an advertiser, affiliate or offer, as sent or as answered."""
    if kind == "advertiser":
        return _partner_fields(PARTNER_STATUSES)
    if kind == "affiliate":
        return _affiliate_fields(answer)
    return _offer_fields(answer)


def _links() -> Schema:
    text = {"type": "string"}
    pixel = _answer({"pixel_url": text, "pixel_img": text, "link": text})
    return _answer(
        {
            "offer_id": ref("Id"),
            "pid": ref("Id"),
            "base_url": {"type": "string"},
            "impressions": {
                "oneOf": [
                    _answer({"unavailable": {"type": "string"}}),
                    pixel,
                ]
            },
            "click": _answer({"link": {"type": "string"}}),
            "postbacks": _answer({"view_through": {"type": "string"}, "click": {"type": "string"}}),
            "warnings": _WARNINGS,
        }
    )


def _catalog_section(kind: str, *, answer: bool) -> Schema:
    fields = {**entity_fields(kind, answer=answer), **_rule_lists(kind)}
    return {"type": "array", "items": _answer(fields) if answer else _object(fields)}


def admin_schemas() -> dict[str, Schema]:
    """The document's ``components.schemas``."""
    schemas: dict[str, Schema] = {
        "Id": {"type": "integer", "minimum": 1, "maximum": MAX_ID},
        "Error": _object(ERROR_FIELDS, ("error",)),
        "RefusedDocument": _answer(
            {
                **ERROR_FIELDS,
                "errors": {"type": "array", "items": _answer(ERROR_FIELDS)},
            }
        ),
    }
    for kind, title in (
        ("advertiser", "Advertiser"),
        ("affiliate", "Affiliate"),
        ("offer", "Offer"),
    ):
        schemas[title] = _answer(entity_fields(kind, answer=True))
        required = ("title", "advertiser_id") if kind == "offer" else ("name",)
        schemas[f"New{title}"] = _object(entity_fields(kind, answer=False), required)
        schemas[f"{title}Change"] = _object(entity_fields(kind, answer=False))
    schemas["OfferWithWarnings"] = _answer(
        {**entity_fields("offer", answer=True), "warnings": _WARNINGS}
    )
    schemas["Catalog"] = _answer(
        {
            f"{kind}s": _catalog_section(kind, answer=True)
            for kind in ("advertiser", "affiliate", "offer")
        }
    )
    schemas["CatalogDocument"] = _object(
        {
            f"{kind}s": _catalog_section(kind, answer=False)
            for kind in ("advertiser", "affiliate", "offer")
        }
    )
    schemas["CatalogApplied"] = _answer(
        {"changes": {"type": "integer", "minimum": 0}, "warnings": _WARNINGS}
    )
    schemas["OfferAccess"] = _answer(
        {
            "offer_id": ref("Id"),
            "access": {"enum": list(ACCESS_MODES)},
            "enabled": _ids("pids enabled for the offer"),
            "disabled": _ids("pids disabled from the offer"),
        }
    )
    schemas["AccessRule"] = _answer({"rule": {"enum": list(ACCESS_RULES)}})
    schemas["AccessRuleSet"] = _answer(
        {
            "offer_id": ref("Id"),
            "pid": ref("Id"),
            "rule": {"enum": [*ACCESS_RULES, None], "description": "null: the rule was lifted"},
        }
    )
    schemas["BlockedAdvertisers"] = _answer(
        {"pid": ref("Id"), "blocked_advertisers": _ids("advertisers it may not run offers of")}
    )
    schemas["AdvertiserBlock"] = _answer(
        {"pid": ref("Id"), "advertiser_id": ref("Id"), "blocked": {"type": "boolean"}}
    )
    schemas["OfferLinks"] = _links()
    return schemas
