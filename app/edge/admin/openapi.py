"""The admin API's OpenAPI 3.1 document, served by the edge at ``/api/v1/openapi.json``.

One operation per route of :func:`app.edge.admin.routes.create_admin_app` (the
``{kind}`` routes once per kind), with every answer its handlers give: the entity
shapes of :mod:`.openapi_schemas`, and each refusal's status with the error shape.
"""

from __future__ import annotations

from typing import Any

from app.catalog.model import OFFER_STATUSES, PARTNER_STATUSES
from app.edge.admin.openapi_schemas import admin_schemas
from app.edge.openapi import Schema, api_document, json_answer, ref

KINDS = (
    ("advertisers", "Advertiser", PARTNER_STATUSES),
    ("affiliates", "Affiliate", PARTNER_STATUSES),
    ("offers", "Offer", OFFER_STATUSES),
)

_REFUSALS = {
    400: "The request is wrong: `error` says what and what to do, `field` which input. "
    "Nothing was written.",
    401: "No API-Key header, or a wrong key.",
    404: "There is no such entity: `field` names the id that was not found.",
    409: "An entity with that id exists: change it instead (PATCH).",
    413: "The body is over 64 KiB.",
    503: "The catalog is still loading, or a change was written but is not yet in "
    "effect in this edge process: retry shortly (a change is not lost).",
}


def _refused(*statuses: int) -> dict[str, Any]:
    """The refusals an operation can answer, besides the ones every operation can."""
    return {
        str(status): json_answer(_REFUSALS[status], ref("Error"))
        for status in sorted({401, 503, *statuses})
    }


def _path_id(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"{description}, in the digits 0-9",
        "schema": ref("Id"),
    }


def _body(schema: Schema, description: str, example: Any) -> dict[str, Any]:
    return {
        "required": True,
        "description": description,
        "content": {"application/json": {"schema": schema, "example": example}},
    }


_EXAMPLES: dict[str, tuple[Any, Any]] = {
    # kind: (a new one, a change)
    "Advertiser": ({"name": "Acme"}, {"status": "inactive"}),
    "Affiliate": (
        {
            "name": "Blog network",
            "postback_urls": ["https://aff.example/pb?c={clickid}&s={status}"],
        },
        {"status": "blocked"},
    ),
    "Offer": (
        {
            "title": "Banner",
            "advertiser_id": 1,
            "allow_impressions": True,
            "impressions_url": "https://acme.example/imp?aimp_id={aimp_id}&sub1={sub1}",
            "payments": [{"type": "CPM", "revenue": "2.00", "payout": "1.50"}],
            "postback_token": "s3cret",
        },
        {"status": "paused"},
    ),
}


def _operation(
    operation_id: str,
    summary: str,
    answers: dict[str, Any],
    *,
    parameters: list[dict[str, Any]] | None = None,
    body: dict[str, Any] | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": operation_id, "summary": summary}
    if parameters:
        operation["parameters"] = parameters
    if body:
        operation["requestBody"] = body
    operation["responses"] = answers
    return operation


def _kind_paths(kinds: str, title: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    """The five routes of one kind: list, create, read, change, delete."""
    kind = kinds.removesuffix("s")
    one = {"Offer": "OfferWithWarnings"}.get(title, title)
    changed = "The offer, with `warnings`." if title == "Offer" else f"The {kind}."
    id_parameter = _path_id("id", f"The {kind}'s id")
    return {
        f"/{kinds}": {
            "get": _operation(
                f"list{title}s",
                f"Every {kind}, by id",
                {
                    "200": json_answer(
                        f"The {kinds}.",
                        {
                            "type": "object",
                            "properties": {kinds: {"type": "array", "items": ref(title)}},
                            "required": [kinds],
                            "additionalProperties": False,
                        },
                    ),
                    **_refused(400),
                },
                parameters=[
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "description": f"Only the {kinds} with this status.",
                        "schema": {"enum": list(statuses)},
                    }
                ],
            ),
            "post": _operation(
                f"create{title}",
                f"Create an {kind}; without an `id` it gets the next free one",
                {"201": json_answer(changed, ref(one)), **_refused(400, 409, 413)},
                body=_body(ref(f"New{title}"), f"The new {kind}.", _EXAMPLES[title][0]),
            ),
        },
        f"/{kinds}/{{id}}": {
            "get": _operation(
                f"get{title}",
                f"One {kind}",
                {"200": json_answer(f"The {kind}.", ref(title)), **_refused(400, 404)},
                parameters=[id_parameter],
            ),
            "patch": _operation(
                f"change{title}",
                "Change the fields given; the others stay as they are",
                {"200": json_answer(changed, ref(one)), **_refused(400, 404, 413)},
                parameters=[id_parameter],
                body=_body(ref(f"{title}Change"), "The fields to change.", _EXAMPLES[title][1]),
            ),
            "delete": _operation(
                f"delete{title}",
                f"Delete an {kind}: it stays, with status deleted, so its history stays reportable",
                {"200": json_answer(f"The {kind}, deleted.", ref(title)), **_refused(400, 404)},
                parameters=[id_parameter],
            ),
        },
    }


def _access_paths() -> dict[str, Any]:
    offer = _path_id("id", "The offer's id")
    pid = _path_id("pid", "The affiliate's id (pid)")
    rule_set = json_answer("The rule now in force.", ref("AccessRuleSet"))
    return {
        "/offers/{id}/affiliates": {
            "get": _operation(
                "getOfferAccess",
                "The offer's access and its enabled and disabled affiliates",
                {"200": json_answer("The access.", ref("OfferAccess")), **_refused(400, 404)},
                parameters=[offer],
            )
        },
        "/offers/{id}/links": {
            "get": _operation(
                "getOfferLinks",
                "The offer's links for one affiliate, from PUBLIC_BASE_URL",
                {
                    "200": json_answer(
                        "The impression pixel and link (or why there is none), the "
                        "click tracking link and the advertiser's postback URL "
                        "templates; `warnings` say why events would be rejected today.",
                        ref("OfferLinks"),
                    ),
                    **_refused(400, 404),
                },
                parameters=[
                    offer,
                    {
                        "name": "pid",
                        "in": "query",
                        "required": True,
                        "description": "The affiliate whose links these are. The page "
                        "takes no other parameter.",
                        "schema": ref("Id"),
                    },
                ],
            )
        },
        "/offers/{id}/affiliates/{pid}": {
            "put": _operation(
                "setOfferAccessRule",
                "Enable an affiliate for the offer (needed when access is approval), or "
                "disable it from the offer",
                {"200": rule_set, **_refused(400, 404, 413)},
                parameters=[offer, pid],
                body=_body(
                    ref("AccessRule"),
                    'Exactly {"rule": "enabled"} or {"rule": "disabled"}.',
                    {"rule": "enabled"},
                ),
            ),
            "delete": _operation(
                "liftOfferAccessRule",
                "Lift the affiliate's rule for the offer",
                {"200": rule_set, **_refused(400, 404)},
                parameters=[offer, pid],
            ),
        },
    }


def _block_paths() -> dict[str, Any]:
    pid = _path_id("id", "The affiliate's id (pid)")
    advertiser = _path_id("advertiser_id", "The advertiser's id")
    block = json_answer("Whether the advertiser is now blocked.", ref("AdvertiserBlock"))
    return {
        "/affiliates/{id}/blocked-advertisers": {
            "get": _operation(
                "getBlockedAdvertisers",
                "The advertisers whose offers the affiliate may not run",
                {
                    "200": json_answer("The blocked advertisers.", ref("BlockedAdvertisers")),
                    **_refused(400, 404),
                },
                parameters=[pid],
            )
        },
        "/affiliates/{id}/blocked-advertisers/{advertiser_id}": {
            "put": _operation(
                "blockAdvertiser",
                "Disable all of an advertiser's offers for the affiliate",
                {"200": block, **_refused(400, 404)},
                parameters=[pid, advertiser],
            ),
            "delete": _operation(
                "unblockAdvertiser",
                "Enable the advertiser's offers for the affiliate again",
                {"200": block, **_refused(400, 404)},
                parameters=[pid, advertiser],
            ),
        },
    }


def _catalog_paths() -> dict[str, Any]:
    return {
        "/catalog": {
            "get": _operation(
                "exportCatalog",
                "The whole catalog as one document (as `imptrack catalog export`)",
                {"200": json_answer("The catalog document.", ref("Catalog")), **_refused()},
            ),
            "post": _operation(
                "applyCatalog",
                "Apply a catalog document (as `imptrack catalog apply`): an entity that "
                "exists is changed with the fields given, a new one is created, a rule "
                "list given becomes exactly the rules of its offer or affiliate",
                {
                    "200": json_answer(
                        "The count of changes written, and a warning per offer of the "
                        "catalog left taking view-through conversions from anyone.",
                        ref("CatalogApplied"),
                    ),
                    "400": json_answer(
                        "The document is wrong: the first error, and `errors`, every one. "
                        "Nothing was written.",
                        ref("RefusedDocument"),
                    ),
                    **_refused(413),
                },
                body=_body(
                    ref("CatalogDocument"),
                    "Up to three lists, applied in this order.",
                    {
                        "advertisers": [{"id": 1, "name": "Acme"}],
                        "affiliates": [
                            {"id": 7, "name": "Blog network", "blocked_advertisers": []}
                        ],
                        "offers": [
                            {
                                "id": 1,
                                "title": "Banner",
                                "advertiser_id": 1,
                                "access": "approval",
                                "enabled_affiliates": [7],
                            }
                        ],
                    },
                ),
            ),
        }
    }


def admin_document() -> dict[str, Any]:
    """The admin API's OpenAPI 3.1 document."""
    paths: dict[str, Any] = {**_catalog_paths()}
    for kinds, title, statuses in KINDS:
        paths |= _kind_paths(kinds, title, statuses)
    paths |= _access_paths() | _block_paths()
    return api_document(
        title="imptrack admin API",
        description=(
            "Advertisers, affiliates, offers and access rules: the catalog, written to "
            "the compacted catalog topic. Every request needs the API-Key header. An "
            "answer comes once the change is in effect in the edge process that took "
            "it. A refused request answers 4xx with `error` (what was wrong) and "
            "`field` (which input), and writes nothing."
        ),
        server="The edge (EDGE_PORT, default 8080).",
        paths=paths,
        schemas=admin_schemas(),
    )
