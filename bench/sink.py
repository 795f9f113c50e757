"""An advertiser's impressions endpoint for the benchmarks: answers 200 to every
request and counts them, and each ``a`` parameter (the aimp_id) it saw.

    python -m bench.sink PORT

``GET /count`` answers ``{"requests", "distinct", "repeated", "first", "last"}``
(times in seconds, ``time.time()``); ``POST /reset`` starts the count again.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import uvloop
from aiohttp import web

_seen: dict[str, int] = {}
_state: dict[str, Any] = {"requests": 0, "first": None, "last": None}


async def impression(request: web.Request) -> web.Response:
    now = time.time()
    _state["requests"] += 1
    _state["first"] = _state["first"] or now
    _state["last"] = now
    aimp_id = request.query.get("a", "")
    _seen[aimp_id] = _seen.get(aimp_id, 0) + 1
    return web.Response(text="ok")


async def count(request: web.Request) -> web.Response:
    repeated = sum(1 for n in _seen.values() if n > 1)
    return web.json_response({**_state, "distinct": len(_seen), "repeated": repeated})


async def reset(request: web.Request) -> web.Response:
    _seen.clear()
    _state.update(requests=0, first=None, last=None)
    return web.json_response({"reset": True})


def main() -> None:
    app = web.Application()
    app.router.add_get("/count", count)
    app.router.add_post("/reset", reset)
    app.router.add_get("/imp", impression)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
