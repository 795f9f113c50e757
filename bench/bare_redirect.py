"""The baseline for the click redirect: a bare aiohttp handler that answers the same
302 (a fresh ID and the parameters encoded into a tracking URL) with no catalog,
no broker and no Redis. Run as ``python -m bench.bare_redirect PORT``."""

from __future__ import annotations

import os
import sys
from urllib.parse import quote

import uvloop
from aiohttp import web


async def click(request: web.Request) -> web.Response:
    clickid = os.urandom(12).hex()
    sub1 = quote(request.query.get("sub1", ""), safe="")
    location = f"https://adv.example/c?clickid={clickid}&sub1={sub1}"
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def main() -> None:
    app = web.Application()
    app.router.add_get("/click", click)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
