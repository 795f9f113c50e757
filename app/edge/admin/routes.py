"""The admin API under ``/api/v1``: advertisers, affiliates, offers and access rules.

Every answer is JSON. A refused request answers 4xx with ``error`` (what was wrong)
and ``field`` (which input), and writes nothing. An offer created or changed is
answered with ``warnings`` too: what the change left weak, for the operator to fix.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from app.catalog import commands
from app.catalog.changes import Entity
from app.catalog.files import to_document
from app.catalog.model import OFFER_STATUSES, PARTNER_STATUSES, Offer
from app.catalog.offer_links import offer_links, parse_pid
from app.catalog.validation import as_dict, id_from_text
from app.edge.admin.openapi import admin_document
from app.edge.api_keys import HEADER
from app.edge.keys import API_KEY_GATE, CATALOG_SERVICE, SETTINGS
from app.edge.openapi import DOCUMENT_PATH, document_handler
from app.edge.responses import unreadable_body
from app.exceptions import CatalogError, CatalogUnavailable

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
PLURALS = {"advertisers": "advertiser", "affiliates": "affiliate", "offers": "offer"}
PUBLIC_ROUTE = "openapi"
"""The route served without the key: the API's description, which holds no data."""


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def _error(status: int, message: str, field: str | None = None, **extra: Any) -> web.Response:
    return _json({"error": message, "field": field, **extra}, status)


@web.middleware
async def admin_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """API-Key check first; then every failure as a JSON answer, never a 500 page."""
    public = request.match_info.route.name == PUBLIC_ROUTE
    if not public and not request.config_dict[API_KEY_GATE].admits(request):
        return _error(401, f"a valid {HEADER} header is required")
    try:
        return await handler(request)
    except CatalogError as exc:
        return _error(exc.http_status, str(exc), exc.field)
    except CatalogUnavailable as exc:
        return _json({"error": str(exc)}, exc.http_status)
    except web.HTTPRequestEntityTooLarge as exc:
        # aiohttp's text states the limit ("Maximum request body size 65536
        # exceeded."); its reason does not.
        return _error(exc.status, exc.text or exc.reason, "body")
    except web.HTTPMethodNotAllowed as exc:
        allowed = ", ".join(sorted(exc.allowed_methods))
        refused = _error(405, f"{exc.method} is not a method of this path; it takes {allowed}")
        # RFC 9110: a 405 names the methods the path takes.
        refused.headers["Allow"] = exc.headers["Allow"]
        return refused
    except web.HTTPException as exc:
        return _error(exc.status, exc.reason)


async def _body(request: web.Request) -> Any:
    try:
        raw = await request.read()
    except web.RequestPayloadError as exc:
        raise CatalogError("body", f"cannot be read ({unreadable_body(exc)})") from None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise CatalogError("body", f"is not valid JSON ({exc})") from None


def _only_parameters(request: web.Request, known: str) -> None:
    unknown = sorted(set(request.query) - {known})
    if unknown:
        raise CatalogError(unknown[0], f"is not a parameter of this page; it takes {known}")


def _id(request: web.Request, name: str) -> int:
    return id_from_text(request.match_info[name], name)


def _kind(request: web.Request) -> str:
    return PLURALS[request.match_info["kind"]]


async def list_entities(request: web.Request) -> web.Response:
    _only_parameters(request, "status")
    kind = _kind(request)
    status = request.query.get("status")
    statuses = OFFER_STATUSES if kind == "offer" else PARTNER_STATUSES
    if status is not None and status not in statuses:
        # An empty list would read as "none has it", not "there is no such status".
        raise CatalogError("status", f"must be one of {', '.join(statuses)}, not {status!r}")
    catalog = await request.config_dict[CATALOG_SERVICE].catalog()
    found = commands.entities(catalog, kind).values()
    rows = [as_dict(e) for e in sorted(found, key=lambda e: e.id) if status in (None, e.status)]
    return _json({request.match_info["kind"]: rows})


async def get_entity(request: web.Request) -> web.Response:
    catalog = await request.config_dict[CATALOG_SERVICE].catalog()
    return _json(as_dict(commands.find(catalog, _kind(request), _id(request, "id"))))


async def create_entity(request: web.Request) -> web.Response:
    data, kind = await _body(request), _kind(request)
    entity, warnings = await request.config_dict[CATALOG_SERVICE].change_entity(
        lambda c: commands.create(c, kind, data)
    )
    return _json(_changed(entity, warnings), 201)


async def update_entity(request: web.Request) -> web.Response:
    data, kind, entity_id = await _body(request), _kind(request), _id(request, "id")
    entity, warnings = await request.config_dict[CATALOG_SERVICE].change_entity(
        lambda c: commands.update(c, kind, entity_id, data)
    )
    return _json(_changed(entity, warnings))


def _changed(entity: Entity, warnings: list[str]) -> dict[str, Any]:
    """A created or changed offer's answer always has ``warnings`` (often empty), so a
    client reads one shape; advertisers and affiliates have nothing to warn of."""
    if isinstance(entity, Offer):
        return {**as_dict(entity), "warnings": warnings}
    return as_dict(entity)


async def delete_entity(request: web.Request) -> web.Response:
    kind, entity_id = _kind(request), _id(request, "id")
    entity = await request.config_dict[CATALOG_SERVICE].change(
        lambda c: _one(commands.delete(c, kind, entity_id))
    )
    return _json(as_dict(entity))


def _one(decided: tuple[Any, Any]) -> tuple[Any, list[Any]]:
    entity, change = decided
    return entity, [change]


async def offer_links_page(request: web.Request) -> web.Response:
    """The offer's links for one affiliate (``?pid=``), from PUBLIC_BASE_URL."""
    _only_parameters(request, "pid")
    catalog = await request.config_dict[CATALOG_SERVICE].catalog()
    base_url = request.config_dict[SETTINGS].links_base_url
    pid = parse_pid(request.query.get("pid"))
    return _json(offer_links(catalog, _id(request, "id"), pid, base_url))


async def offer_access(request: web.Request) -> web.Response:
    catalog = await request.config_dict[CATALOG_SERVICE].catalog()
    offer = commands.find(catalog, "offer", _id(request, "id"))
    return _json(
        {
            "offer_id": offer.id,
            "access": offer.access,
            "enabled": sorted(p for o, p in catalog.enabled if o == offer.id),
            "disabled": sorted(p for o, p in catalog.disabled if o == offer.id),
        }
    )


async def set_offer_access(request: web.Request) -> web.Response:
    offer_id, pid = _id(request, "id"), _id(request, "pid")
    if request.method == "DELETE":
        rule = None
    else:
        body = await _body(request)
        if not isinstance(body, dict) or set(body) != {"rule"}:
            raise CatalogError(
                "rule", 'the body must be {"rule": "enabled"} or {"rule": "disabled"}'
            )
        rule = body["rule"]
    await request.config_dict[CATALOG_SERVICE].change(
        lambda c: (None, [commands.set_access(c, offer_id, pid, rule)])
    )
    return _json({"offer_id": offer_id, "pid": pid, "rule": rule})


async def blocked_advertisers(request: web.Request) -> web.Response:
    catalog = await request.config_dict[CATALOG_SERVICE].catalog()
    pid = commands.find(catalog, "affiliate", _id(request, "id")).id
    blocked = sorted(a for a, p in catalog.advertiser_blocks if p == pid)
    return _json({"pid": pid, "blocked_advertisers": blocked})


async def set_blocked_advertiser(request: web.Request) -> web.Response:
    pid, advertiser_id = _id(request, "id"), _id(request, "advertiser_id")
    blocked = request.method == "PUT"
    await request.config_dict[CATALOG_SERVICE].change(
        lambda c: (None, [commands.set_advertiser_block(c, advertiser_id, pid, blocked)])
    )
    return _json({"pid": pid, "advertiser_id": advertiser_id, "blocked": blocked})


async def export_catalog(request: web.Request) -> web.Response:
    return _json(to_document(await request.config_dict[CATALOG_SERVICE].catalog()))


async def apply_catalog(request: web.Request) -> web.Response:
    """The whole document is checked first; with any error nothing is written. Every
    refusal has ``errors``, a body that is no JSON document too: one shape to read."""
    try:
        document = await _body(request)
    except CatalogError as exc:
        return _refused_document([exc])
    applied = await request.config_dict[CATALOG_SERVICE].apply_document(document)
    if applied.errors:
        return _refused_document(applied.errors)
    return _json({"changes": applied.written, "warnings": applied.warnings})


def _refused_document(errors: list[CatalogError]) -> web.Response:
    return _error(
        400,
        str(errors[0]),
        errors[0].field,
        errors=[{"error": str(e), "field": e.field} for e in errors],
    )


def create_admin_app() -> web.Application:
    """The ``/api/v1`` sub-application; it reads its keys from the edge app."""
    admin = web.Application(middlewares=[admin_middleware])
    admin.router.add_get(DOCUMENT_PATH, document_handler(admin_document), name=PUBLIC_ROUTE)
    kinds = "{kind:advertisers|affiliates|offers}"
    admin.router.add_get("/catalog", export_catalog)
    admin.router.add_post("/catalog", apply_catalog)
    admin.router.add_get(f"/{kinds}", list_entities)
    admin.router.add_post(f"/{kinds}", create_entity)
    admin.router.add_get(f"/{kinds}/{{id:[^/]+}}", get_entity)
    admin.router.add_patch(f"/{kinds}/{{id:[^/]+}}", update_entity)
    admin.router.add_delete(f"/{kinds}/{{id:[^/]+}}", delete_entity)
    admin.router.add_get("/offers/{id:[^/]+}/affiliates", offer_access)
    admin.router.add_get("/offers/{id:[^/]+}/links", offer_links_page)
    admin.router.add_put("/offers/{id:[^/]+}/affiliates/{pid:[^/]+}", set_offer_access)
    admin.router.add_delete("/offers/{id:[^/]+}/affiliates/{pid:[^/]+}", set_offer_access)
    admin.router.add_get("/affiliates/{id:[^/]+}/blocked-advertisers", blocked_advertisers)
    admin.router.add_put(
        "/affiliates/{id:[^/]+}/blocked-advertisers/{advertiser_id:[^/]+}", set_blocked_advertiser
    )
    admin.router.add_delete(
        "/affiliates/{id:[^/]+}/blocked-advertisers/{advertiser_id:[^/]+}", set_blocked_advertiser
    )
    return admin
