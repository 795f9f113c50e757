"""``GET|POST /postback``: store the postback, then answer with the worker's verdict.

Nothing is judged here. The postback goes to the broker as received (with what the
edge could not read, if anything), and the answer waits, up to
``POSTBACK_VERDICT_SECONDS``, for the decision the worker publishes; past that
the advertiser gets "pending" and the postback's ID, and the decision still lands
in the Server postbacks slice.

HTTP status: 200 accepted, 202 pending, 400 refused (the JSON says why), 503 when
the broker did not take the postback (retry it; nothing was recorded).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from app.attribution.params import collect_params
from app.edge.client_ip import client_ip
from app.edge.keys import PLACEMENT, PRODUCER, SETTINGS, VERDICTS
from app.edge.producer import BrokerUnavailable
from app.edge.responses import NO_STORE, RETRY_AFTER_SECONDS, unreadable_body
from app.events import kinds
from app.events.records import postback_payload
from app.events.statuses import PostbackStatus

_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# What aiohttp raises for a body it cannot decode: a broken Content-Encoding
# (RequestPayloadError), a form in an unknown charset or not in its charset
# (LookupError, UnicodeDecodeError), malformed multipart (ValueError, RuntimeError,
# BadHttpMessage). A body over the size limit stays a 413.
_UNREADABLE_BODY = (
    web.RequestPayloadError,
    HttpProcessingError,
    LookupError,
    RuntimeError,
    ValueError,
)


def _text(value: Any) -> str | None:
    """A JSON value as a parameter value; None for anything that is not a scalar."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return None if value is None else str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    return None


def _storable(text: str) -> str:
    """``text`` with lone surrogates spelled out: aiohttp keeps header bytes that are
    not UTF-8 as such, and charsets such as utf-7 decode to them; JSON takes none."""
    return text.encode("utf-8", "backslashreplace").decode()


async def _body_pairs(request: web.Request) -> tuple[list[tuple[str, str]], str | None]:
    """The parameters in a POST body, and what could not be read of it."""
    if not request.can_read_body:
        return [], None
    try:
        return await _read_body(request)
    except _UNREADABLE_BODY as exc:
        return [], f"the {request.content_type} body cannot be read ({unreadable_body(exc)})"


async def _read_body(request: web.Request) -> tuple[list[tuple[str, str]], str | None]:
    if request.content_type == "application/json":
        try:
            document = orjson.loads(await request.read())
        except orjson.JSONDecodeError as exc:
            return [], f"the body is not valid JSON ({exc})"
        if not isinstance(document, dict):
            return [], "the JSON body must be an object of parameters"
        pairs: list[tuple[str, str]] = []
        for name, value in document.items():
            text = _text(value)
            if text is None:
                return pairs, f"{name} in the JSON body must be a string or a number"
            pairs.append((name, text))
        return pairs, None
    if request.content_type in _FORM_TYPES:
        form = await request.post()
        pairs = []
        for name, value in form.items():
            if not isinstance(value, str):
                return pairs, f"{name} is a file upload; send parameters as text"
            if _storable(name + value) != name + value:
                return pairs, "the form's text is not valid Unicode in its charset; send UTF-8"
            pairs.append((name, value))
        return pairs, None
    return [], (
        f"Content-Type {request.content_type} is not supported; send a form "
        "(application/x-www-form-urlencoded) or JSON (application/json)"
    )


async def postback(request: web.Request) -> web.Response:
    pairs: list[tuple[str, str]] = list(request.query.items())
    body_problem = None
    if request.method == "POST":
        body_pairs, body_problem = await _body_pairs(request)
        pairs.extend(body_pairs)
    params, params_problem = collect_params(pairs)
    problem = body_problem or params_problem
    settings = request.app[SETTINGS]
    waiter = request.app[VERDICTS]
    placement = request.app[PLACEMENT]
    partition = placement.of_postback(params)
    postback_id = placement.ids.new_id(partition=partition)
    record = postback_payload(
        postback_id,
        request.method,
        params,
        client_ip(request, settings.edge_trusted_proxy_hops),
        waiter.channel,
        problem and _storable(problem),
    )
    decided = waiter.expect(postback_id)
    try:
        await request.app[PRODUCER].produce(
            kinds.POSTBACKS.topic, postback_id, orjson.dumps(record), partition
        )
    except BrokerUnavailable:
        waiter.forget(postback_id)
        return web.json_response(
            {
                "status": PostbackStatus.REFUSED,
                "error": "the postback could not be stored; retry shortly",
            },
            status=503,
            headers={**NO_STORE, "Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    try:
        verdict = await asyncio.wait_for(decided, settings.postback_verdict_seconds)
    except TimeoutError:
        waiter.forget(postback_id)
        return web.json_response(
            {"status": PostbackStatus.ACCEPTED, "pending": True, "postback_id": postback_id},
            status=202,
            headers=NO_STORE,
        )
    return web.json_response(
        verdict,
        status=200 if verdict.get("status") == PostbackStatus.ACCEPTED else 400,
        headers=NO_STORE,
    )
