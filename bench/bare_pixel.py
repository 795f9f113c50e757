"""The baseline for the pixel: a bare aiohttp handler answering the same 43-byte GIF
with the same headers (a fresh ``X-Aimp-Id`` included) and no catalog, parameter
checks or broker. Run as ``python -m bench.bare_pixel PORT``."""

from __future__ import annotations

import sys

import uvloop
from aiohttp import web

from app.edge.pixel import _GIF_HEADERS, TRANSPARENT_GIF
from app.ids import new_id


async def pixel(request: web.Request) -> web.Response:
    headers = {**_GIF_HEADERS, "X-Aimp-Id": new_id()}
    return web.Response(body=TRANSPARENT_GIF, content_type="image/gif", headers=headers)


def main() -> None:
    app = web.Application()
    app.router.add_get("/imp", pixel)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
