"""The baseline for the pixel: a bare aiohttp handler answering the same GIF with the
same headers (a fresh ID included) and no catalog, parameter checks or broker. Run as
``python -m bench.bare_pixel PORT``."""

from __future__ import annotations

import os
import sys

import uvloop
from aiohttp import web

from app.edge.pixel import _GIF_HEADERS, TRANSPARENT_GIF


async def pixel(request: web.Request) -> web.Response:
    headers = {**_GIF_HEADERS, "X-Aimp-Id": os.urandom(12).hex()}
    return web.Response(body=TRANSPARENT_GIF, content_type="image/gif", headers=headers)


def main() -> None:
    app = web.Application()
    app.router.add_get("/imp", pixel)
    uvloop.install()
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
